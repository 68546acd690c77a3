package config

import (
	_ "embed"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"time"
)

// defaultYAML is embedded as a string (not []byte) so that it cannot be
// mutated: Default hands out copies.
//
//go:embed default.yaml
var defaultYAML string

// Default returns a copy of the embedded default configuration. It is
// valid input for Parse and doubles as the annotated reference.
func Default() []byte { return []byte(defaultYAML) }

// Transport names accepted in listen.transports and hop URIs.
const (
	TransportUDP = "udp"
	TransportTCP = "tcp"
)

// Destination set policies.
const (
	// PolicyOrdered tries hops in config order (Kamailio ds algorithm 4/8
	// style "first available").
	PolicyOrdered = "ordered"
	// PolicyWeighted picks the first hop at random proportionally to the
	// weights, then fails over in descending weight order.
	PolicyWeighted = "weighted"
)

// DefaultRouteName is the route used when nothing else matches.
const DefaultRouteName = "default"

// DefaultHopPort is the port assumed when a hop URI has none (RFC 3261 §19.1.2).
const DefaultHopPort = 5060

// Config is the parsed, defaulted and validated configuration. Treat it as
// read-only once Parse/Load (and Override, if used) returned: it is shared
// by every worker without locking.
type Config struct {
	Listen       []Listen
	UDP          UDP
	TCP          TCP
	Workers      Workers
	Timers       Timers
	Proxy        Proxy
	Shutdown     Shutdown
	Log          Log
	EBPF         EBPF
	Tracing      Tracing
	Metrics      Metrics
	Destinations map[string]*DestinationSet
	// Routes keeps config order; the matcher tries the "default" route last
	// wherever it is written.
	Routes []Route
	// Queues are the named suspend queues, keyed by name.
	Queues map[string]*Queue
	// Suspend keeps config order; the first matching rule wins.
	Suspend []SuspendRule
	// Lookups are the named HTTP route lookups, keyed by name.
	Lookups map[string]*Lookup

	// Warnings are non-fatal findings, each "FILE:LINE:COL: message" like
	// an *Error, in document order. Parse succeeds with them; the caller
	// should log them.
	Warnings []string
}

// Listen is one local address the proxy binds.
type Listen struct {
	Address    netip.AddrPort
	Transports []string // lower-case, e.g. ["udp", "tcp"]
	// Advertise is "host:port" as it should appear in Via and
	// Record-Route; it defaults to Address. AdvertiseHost has no IPv6
	// brackets (callers add them when formatting a SIP URI).
	Advertise     string
	AdvertiseHost string
	AdvertisePort int
}

// UDP tunes the UDP transport.
type UDP struct {
	Sockets     int // SO_REUSEPORT sockets per listen address
	RecvBuffer  int // bytes (SO_RCVBUF)
	SendBuffer  int // bytes (SO_SNDBUF)
	MaxDatagram int // bytes
}

// TCP tunes the TCP transport.
type TCP struct {
	IdleTimeout    time.Duration
	ConnectTimeout time.Duration
	MaxMessageSize int // bytes
}

// Workers sizes the worker pool.
type Workers struct {
	Count        int // 0 = runtime.GOMAXPROCS(0), see EffectiveCount
	Inbox        int // queued messages per worker
	LockOSThread bool
	PinCPUs      bool
}

// EffectiveCount resolves Count 0 to runtime.GOMAXPROCS(0). It is
// resolved at use rather than at parse time because since Go 1.25
// GOMAXPROCS follows cgroup CPU limits and may change after loading.
func (w Workers) EffectiveCount() int {
	if w.Count > 0 {
		return w.Count
	}
	return runtime.GOMAXPROCS(0)
}

// Timers are the RFC 3261 transaction timers.
type Timers struct {
	T1     time.Duration
	T2     time.Duration
	T4     time.Duration
	TimerC time.Duration // INVITE proxy Timer C (RFC 3261 §16.6 step 11)
}

// Proxy holds proxy-core behaviour.
type Proxy struct {
	RecordRoute        bool
	MaxForwards        int           // value inserted when a request has none
	OverloadRetryAfter time.Duration // Retry-After on overload 503s
	UDPMTUThreshold    int           // larger requests go over TCP (RFC 3261 §18.1.1)
}

// What happens to suspended (queued) requests on SIGTERM.
const (
	// ShutdownRelease releases every queued request at once, so it is
	// routed as if its delay had expired.
	ShutdownRelease = "release"
	// ShutdownReject answers every queued request 503.
	ShutdownReject = "reject"
)

// eBPF capture modes.
const (
	// EBPFAuto attaches the capture programs when the kernel and the
	// process's capabilities allow, and otherwise runs without them after
	// one warning.
	EBPFAuto = "auto"
	// EBPFOn refuses to start without eBPF.
	EBPFOn = "on"
	// EBPFOff never loads eBPF.
	EBPFOff = "off"
)

// EBPF configures kernel timestamping of SIP packets (TC ingress/egress).
type EBPF struct {
	Mode       string   // EBPFAuto, EBPFOn or EBPFOff
	Interfaces []string // empty: the interfaces that own the listen addresses
	Snaplen    int      // payload bytes captured per packet
	LegacyTC   bool     // force clsact + bpf filter instead of TCX
	RingBuffer int      // ring buffer bytes
	MatchTTL   time.Duration
}

// Tracing configures OpenTelemetry export (docs/tracing.md). Unset fields
// are filled from the standard OTEL_* environment variables at startup;
// with neither, tracing is off.
type Tracing struct {
	// Enabled: nil = on when an endpoint is configured here or in
	// OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT; false forces it off.
	Enabled            *bool
	Endpoint           string // host:port or URL
	Protocol           string // "", TracingHTTP or TracingGRPC
	Headers            map[string]string
	Insecure           bool
	CAFile             string
	CertFile           string
	KeyFile            string
	Compression        string  // "", "gzip" or "none"
	SampleRatio        float64 // -1: unset (environment or 1)
	QueueSize          int
	BatchSize          int
	BatchTimeout       time.Duration
	ExportTimeout      time.Duration
	ServiceName        string
	ResourceAttributes map[string]string
	Redact             string // RedactNone, RedactHash or RedactDrop
	// Settle: how long a finished transaction waits for its last kernel
	// timestamps before it is checked and exported.
	Settle time.Duration
}

// Tracing protocols and redaction modes.
const (
	TracingHTTP = "http/protobuf"
	TracingGRPC = "grpc"
	RedactNone  = "none"
	RedactHash  = "hash"
	RedactDrop  = "drop"
)

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen is host:port for /metrics, /healthz and /readyz; "" = off.
	Listen string
}

// Shutdown controls graceful termination.
type Shutdown struct {
	Grace  time.Duration // time open transactions get after SIGTERM
	Queued string        // ShutdownRelease or ShutdownReject
}

// Log configures logging.
type Log struct {
	Level  string // debug|info|warn|error
	Format string // text|json
}

// SlogLevel maps Level to a slog.Level.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// DestinationSet is a named group of next hops (a Kamailio dispatcher set).
type DestinationSet struct {
	Name       string
	Policy     string // PolicyOrdered or PolicyWeighted
	Hops       []Hop
	FailoverOn []int // final statuses that move on to the next hop
	Probe      Probe

	// fromURIDefaulted records that Probe.FromURI was derived from the
	// listen address, so Override can re-derive it.
	fromURIDefaulted bool
}

// Probe configures OPTIONS health probing of a set's hops (the dispatcher's
// ds_ping_interval / ds_probing_threshold / ds_inactive_threshold).
type Probe struct {
	Enabled        bool
	Interval       time.Duration
	Timeout        time.Duration // already clamped to 64*T1 (Timer F)
	FailuresToDown int
	SuccessesToUp  int
	FromURI        string
}

// Hop is one next hop of a destination set.
type Hop struct {
	URI       string // as written
	Host      string // host name or IP as written, IPv6 without brackets
	Port      int
	Transport string // TransportUDP or TransportTCP
	Addr      netip.AddrPort
	Weight    int
}

// Route sends requests matching Match to the destination set To, or asks
// the HTTP route lookup Lookup where to send them. Exactly one of To and
// Lookup is set.
type Route struct {
	Name   string
	Match  Match
	To     string // destination set name, or ""
	Lookup string // lookup name, or ""
}

// Match conditions; all set fields must hold. The zero Match matches all.
type Match struct {
	Methods    []string // upper-case; empty = any
	User       string   // exact Request-URI user
	UserPrefix string   // Request-URI user prefix
	Host       string   // Request-URI host, compared case-insensitively
	URIRegex   *regexp.Regexp
}

// IsZero reports whether m has no conditions.
func (m Match) IsZero() bool {
	return len(m.Methods) == 0 && m.User == "" && m.UserPrefix == "" && m.Host == "" && m.URIRegex == nil
}

// Reply is a locally generated final response.
type Reply struct {
	Code       int           // 300-699
	Reason     string        // reason phrase
	RetryAfter time.Duration // whole seconds; 0 = no Retry-After header
}

// Queue is a named suspend queue (Kamailio's t_suspend + mqueue + rtimer
// + t_continue): a suspended request waits Delay, then one of Consumers
// releases it back to its worker to be routed.
type Queue struct {
	Name string
	// Delay is how long each request is held (0 = released as soon as a
	// consumer gets to it).
	Delay time.Duration
	// MaxWait bounds how long a suspended transaction may wait before it
	// is answered 408. It may be less than or equal to Delay (Parse then
	// adds a warning).
	MaxWait   time.Duration
	Consumers int   // goroutines releasing entries (>= 1)
	Capacity  int   // waiting entries (>= 1)
	OnFull    Reply // answer when Capacity entries are already waiting
}

// SuspendRule sends requests matching Match to the queue named Queue.
type SuspendRule struct {
	Name  string
	Match SuspendMatch
	Queue string
}

// SuspendMatch conditions; all set fields must hold. The zero value
// matches every request.
type SuspendMatch struct {
	Methods []string // upper-case; empty = any
	// InDialog: nil = any; true = only requests whose To has a tag;
	// false = only requests without one (initial requests).
	InDialog *bool
	URIRegex *regexp.Regexp // on the full Request-URI
	// HeaderName and HeaderRegex are set together: the first header of
	// that name (case-insensitive, as written in the config) must exist
	// and its value match.
	HeaderName  string
	HeaderRegex *regexp.Regexp
}

// IsZero reports whether m has no conditions.
func (m SuspendMatch) IsZero() bool {
	return len(m.Methods) == 0 && m.InDialog == nil && m.URIRegex == nil && m.HeaderName == ""
}

// Lookup is a named HTTP route lookup: the request is suspended while a
// GET to URL (placeholders expanded) asks where it should go.
type Lookup struct {
	Name string
	// URL is an http or https URL as written, with {placeholder}s (see
	// LookupPlaceholders) only in its path and query.
	URL         string
	Timeout     time.Duration // per HTTP request
	MaxWait     time.Duration // the suspended transaction's limit
	Concurrency int           // HTTP requests in flight
	QueueSize   int           // lookups waiting for a free slot
	OnTimeout   Reply         // when Timeout or MaxWait expires
	OnError     Reply         // transport error, non-2xx, bad JSON
}

// LookupPlaceholders are the {name}s a lookup URL may contain (names are
// case-insensitive). The expander substitutes the URL-query-escaped value:
//
//	{method}  the request method
//	{ruri}    the Request-URI
//	{user}    the Request-URI user
//	{host}    the Request-URI host
//	{from}    the From URI
//	{to}      the To URI
//	{callid}  the Call-ID
//	{source}  the source address of the request, IP:port
var LookupPlaceholders = []string{"method", "ruri", "user", "host", "from", "to", "callid", "source"}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(path, data)
}

// DefaultRoute returns the route named "default" (always present in a
// parsed Config).
func (c *Config) DefaultRoute() *Route {
	for i := range c.Routes {
		if c.Routes[i].Name == DefaultRouteName {
			return &c.Routes[i]
		}
	}
	return nil
}

// defaults returns a Config holding every scalar default; lists and maps
// are filled by the parser.
func defaults() *Config {
	return &Config{
		UDP: UDP{
			Sockets:     2,
			RecvBuffer:  8 << 20,
			SendBuffer:  8 << 20,
			MaxDatagram: 65535,
		},
		TCP: TCP{
			IdleTimeout:    120 * time.Second,
			ConnectTimeout: 2 * time.Second,
			MaxMessageSize: 65535,
		},
		Workers: Workers{
			Count:        0,
			Inbox:        8192,
			LockOSThread: false,
			PinCPUs:      false,
		},
		Timers: Timers{
			T1:     500 * time.Millisecond,
			T2:     4 * time.Second,
			T4:     5 * time.Second,
			TimerC: 180 * time.Second,
		},
		Proxy: Proxy{
			RecordRoute:        true,
			MaxForwards:        70,
			OverloadRetryAfter: 5 * time.Second,
			UDPMTUThreshold:    1300,
		},
		Shutdown: Shutdown{Grace: 32 * time.Second, Queued: ShutdownRelease},
		EBPF:     EBPF{Mode: EBPFAuto, Snaplen: 2048, RingBuffer: 32 << 20, MatchTTL: 2 * time.Second},
		Log:      Log{Level: "info", Format: "text"},
		Tracing:  Tracing{SampleRatio: -1, Redact: RedactNone, Settle: 250 * time.Millisecond},
	}
}

func defaultSet(name string) *DestinationSet {
	return &DestinationSet{
		Name:       name,
		Policy:     PolicyOrdered,
		FailoverOn: []int{408, 500, 503},
		Probe: Probe{
			Enabled:        false,
			Interval:       10 * time.Second,
			Timeout:        2 * time.Second,
			FailuresToDown: 3,
			SuccessesToUp:  2,
		},
		fromURIDefaulted: true,
	}
}

// defaultQueue holds a queue's defaults; Delay has none (it is required).
func defaultQueue(name string) *Queue {
	return &Queue{
		Name:      name,
		MaxWait:   5 * time.Second,
		Consumers: 1,
		Capacity:  10000,
		OnFull:    Reply{Code: 503, Reason: "Queue Full", RetryAfter: 5 * time.Second},
	}
}

// defaultLookup holds a lookup's defaults; URL has none (it is required).
func defaultLookup(name string) *Lookup {
	return &Lookup{
		Name:        name,
		Timeout:     time.Second,
		MaxWait:     5 * time.Second,
		Concurrency: 16,
		QueueSize:   1024,
		OnTimeout:   Reply{Code: 504, Reason: "Route Lookup Timeout"},
		OnError:     Reply{Code: 500, Reason: "Route Lookup Failed"},
	}
}

// defaultListen is used when the "listen" key is absent.
const defaultListen = "127.0.0.1:5060"

// defaultFromURI derives the probe From URI from the first listen entry.
func defaultFromURI(listen []Listen) string {
	host := "127.0.0.1"
	if len(listen) > 0 {
		host = listen[0].AdvertiseHost
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + host + "]"
	}
	return "sip:sipvigil@" + host
}
