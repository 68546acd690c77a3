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
	Destinations map[string]*DestinationSet
	// Routes keeps config order; the matcher tries the "default" route last
	// wherever it is written.
	Routes []Route
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

// Shutdown controls graceful termination.
type Shutdown struct {
	Grace time.Duration // time open transactions get after SIGTERM
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

// Route sends requests matching Match to the destination set To.
type Route struct {
	Name  string
	Match Match
	To    string
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
		Shutdown: Shutdown{Grace: 32 * time.Second},
		Log:      Log{Level: "info", Format: "text"},
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
