package config

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// fakeResolver answers from a table so tests never touch DNS.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("lookup %s: no such host", host)
}

var testResolver = fakeResolver{
	"pbx.example.net": {netip.MustParseAddr("192.0.2.10")},
	"v6.example.net":  {netip.MustParseAddr("2001:db8::10")},
}

// minimal is the smallest valid config: everything else is defaulted.
const minimal = `
destinations:
  d:
    hops: [127.0.0.1:5070]
routes:
  - name: default
    to: d
`

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := parse("test.yaml", []byte(src), testResolver)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c
}

func TestDefaultParses(t *testing.T) {
	c, err := Parse("default.yaml", Default())
	if err != nil {
		t.Fatalf("embedded default.yaml: %v", err)
	}
	if got := c.Listen; len(got) != 1 || got[0].Address != netip.MustParseAddrPort("127.0.0.1:5060") ||
		!slices.Equal(got[0].Transports, []string{"udp", "tcp"}) || got[0].Advertise != "127.0.0.1:5060" {
		t.Errorf("listen = %+v", got)
	}
	if !c.Proxy.RecordRoute {
		t.Error("record_route should be true")
	}
	s := c.Destinations["default"]
	if s == nil || len(s.Hops) != 1 || s.Probe.Enabled {
		t.Fatalf("default set = %+v", s)
	}
	want := Hop{URI: "127.0.0.1:5070;transport=udp", Host: "127.0.0.1", Port: 5070, Transport: "udp",
		Addr: netip.MustParseAddrPort("127.0.0.1:5070"), Weight: 1}
	if s.Hops[0] != want {
		t.Errorf("hop = %+v, want %+v", s.Hops[0], want)
	}
	if r := c.DefaultRoute(); r == nil || r.To != "default" || r.Lookup != "" || !r.Match.IsZero() {
		t.Errorf("default route = %+v", r)
	}
	// The re-INVITE recipe: a queue and the rule that feeds it.
	wantQ := Queue{Name: "reinvite", Delay: 10 * time.Millisecond, MaxWait: 5 * time.Second, Consumers: 1,
		Capacity: 10000, OnFull: Reply{Code: 503, Reason: "Queue Full", RetryAfter: 5 * time.Second}}
	if q := c.Queues["reinvite"]; len(c.Queues) != 1 || q == nil || *q != wantQ {
		t.Errorf("queues = %+v, want reinvite %+v", c.Queues, wantQ)
	}
	if len(c.Suspend) != 1 {
		t.Fatalf("suspend = %+v", c.Suspend)
	}
	r := c.Suspend[0]
	if r.Name != "reinvite-delay" || r.Queue != "reinvite" || !slices.Equal(r.Match.Methods, []string{"INVITE"}) ||
		r.Match.InDialog == nil || !*r.Match.InDialog || r.Match.URIRegex != nil || r.Match.HeaderName != "" {
		t.Errorf("suspend[0] = %+v", r)
	}
	if len(c.Lookups) != 0 {
		t.Errorf("lookups = %+v (the default documents them commented out)", c.Lookups)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	// Default() must hand out copies.
	b := Default()
	b[0] = 'X'
	if Default()[0] == 'X' {
		t.Error("Default returned shared bytes")
	}
}

// TestDefaultsMatchEmbedded guards the reference doc: every value written
// in default.yaml must equal what an omitted key defaults to.
func TestDefaultsMatchEmbedded(t *testing.T) {
	full, err := Parse("default.yaml", Default())
	if err != nil {
		t.Fatal(err)
	}
	min := mustParse(t, "destinations: {default: {hops: [127.0.0.1:5070]}}\nroutes: [{name: default, to: default}]\n")
	if fmt.Sprintf("%+v", full.UDP) != fmt.Sprintf("%+v", min.UDP) ||
		full.TCP != min.TCP || full.Workers != min.Workers || full.Timers != min.Timers ||
		full.Proxy != min.Proxy || full.Shutdown != min.Shutdown || full.Log != min.Log {
		t.Errorf("default.yaml disagrees with built-in defaults:\n%+v\n%+v", full, min)
	}
	fs, ms := full.Destinations["default"], min.Destinations["default"]
	if fs.Policy != ms.Policy || !slices.Equal(fs.FailoverOn, ms.FailoverOn) || fs.Probe != ms.Probe {
		t.Errorf("default set disagrees:\n%+v\n%+v", fs, ms)
	}
	// The recipe queue writes out every key; delay has no default.
	minQ := mustParse(t, "routes: [{name: default, lookup: l}]\nlookups: {l: {url: 'http://127.0.0.1/'}}\n"+
		"queues: {reinvite: {delay: 10ms}}\nsuspend: [{name: r, queue: reinvite}]\n")
	if fq, mq := full.Queues["reinvite"], minQ.Queues["reinvite"]; fq == nil || *fq != *mq {
		t.Errorf("queue reinvite disagrees with built-in defaults:\n%+v\n%+v", fq, mq)
	}
}

func TestDefaultValues(t *testing.T) {
	c := mustParse(t, minimal)
	tests := []struct {
		name      string
		got, want any
	}{
		{"listen", fmt.Sprint(c.Listen), "[{127.0.0.1:5060 [udp tcp] 127.0.0.1:5060 127.0.0.1 5060}]"},
		{"udp.sockets", c.UDP.Sockets, 2},
		{"udp.recv_buffer", c.UDP.RecvBuffer, 8 << 20},
		{"udp.send_buffer", c.UDP.SendBuffer, 8 << 20},
		{"udp.max_datagram", c.UDP.MaxDatagram, 65535},
		{"tcp.idle_timeout", c.TCP.IdleTimeout, 120 * time.Second},
		{"tcp.connect_timeout", c.TCP.ConnectTimeout, 2 * time.Second},
		{"tcp.max_message_size", c.TCP.MaxMessageSize, 65535},
		{"workers.count", c.Workers.Count, 0},
		{"workers.inbox", c.Workers.Inbox, 8192},
		{"workers.lock_os_thread", c.Workers.LockOSThread, false},
		{"workers.pin_cpus", c.Workers.PinCPUs, false},
		{"timers.t1", c.Timers.T1, 500 * time.Millisecond},
		{"timers.t2", c.Timers.T2, 4 * time.Second},
		{"timers.t4", c.Timers.T4, 5 * time.Second},
		{"timers.timer_c", c.Timers.TimerC, 180 * time.Second},
		{"proxy.record_route", c.Proxy.RecordRoute, true},
		{"proxy.max_forwards", c.Proxy.MaxForwards, 70},
		{"proxy.overload_retry_after", c.Proxy.OverloadRetryAfter, 5 * time.Second},
		{"proxy.udp_mtu_threshold", c.Proxy.UDPMTUThreshold, 1300},
		{"shutdown.grace", c.Shutdown.Grace, 32 * time.Second},
		{"shutdown.queued", c.Shutdown.Queued, "release"},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
		{"policy", c.Destinations["d"].Policy, "ordered"},
		{"failover_on", fmt.Sprint(c.Destinations["d"].FailoverOn), "[408 500 503]"},
		{"probe", c.Destinations["d"].Probe, Probe{Interval: 10 * time.Second, Timeout: 2 * time.Second,
			FailuresToDown: 3, SuccessesToUp: 2, FromURI: "sip:sipvigil@127.0.0.1"}},
		{"hop", c.Destinations["d"].Hops[0], Hop{URI: "127.0.0.1:5070", Host: "127.0.0.1", Port: 5070,
			Transport: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:5070"), Weight: 1}},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if c.Workers.EffectiveCount() < 1 {
		t.Error("EffectiveCount < 1")
	}
}

func TestValues(t *testing.T) {
	src := `
listen:
  - address: "[::1]:5080"
    transports: [TCP]
  - address: 0.0.0.0:5060
    advertise: sip.example.net
udp:
  sockets: 4
  recv_buffer: 512KiB
  send_buffer: 1048576
  max_datagram: 9KB
tcp:
  idle_timeout: 1m30s
  connect_timeout: 750ms
  max_message_size: 1MiB
workers: {count: 3, inbox: 16, lock_os_thread: true, pin_cpus: true}
timers: {t1: 100ms, t2: 2s, t4: 3s, timer_c: 4m}
proxy: {record_route: false, max_forwards: 20, overload_retry_after: 10s, udp_mtu_threshold: 1400}
shutdown: {grace: 0s}
log: {level: DEBUG, format: json}
destinations:
  d:
    policy: weighted
    failover_on: [486, 503]
    probe: {enabled: true, interval: 5s, timeout: 30s, failures_to_down: 1, successes_to_up: 5, from_uri: "sip:ping@example.net"}
    hops:
      - {uri: 127.0.0.1:5070, weight: 3}
      - uri: pbx.example.net
routes:
  - name: default
    to: d
`
	c := mustParse(t, src)
	tests := []struct {
		name      string
		got, want any
	}{
		{"listen0", fmt.Sprint(c.Listen[0]), "{[::1]:5080 [tcp] [::1]:5080 ::1 5080}"},
		{"listen1", fmt.Sprint(c.Listen[1]), "{0.0.0.0:5060 [udp tcp] sip.example.net:5060 sip.example.net 5060}"},
		{"udp", c.UDP, UDP{Sockets: 4, RecvBuffer: 512 << 10, SendBuffer: 1 << 20, MaxDatagram: 9000}},
		{"tcp", c.TCP, TCP{IdleTimeout: 90 * time.Second, ConnectTimeout: 750 * time.Millisecond, MaxMessageSize: 1 << 20}},
		{"workers", c.Workers, Workers{Count: 3, Inbox: 16, LockOSThread: true, PinCPUs: true}},
		{"timers", c.Timers, Timers{T1: 100 * time.Millisecond, T2: 2 * time.Second, T4: 3 * time.Second, TimerC: 4 * time.Minute}},
		{"proxy", c.Proxy, Proxy{RecordRoute: false, MaxForwards: 20, OverloadRetryAfter: 10 * time.Second, UDPMTUThreshold: 1400}},
		{"shutdown", c.Shutdown, Shutdown{Grace: 0, Queued: "release"}},
		{"log", c.Log, Log{Level: "debug", Format: "json"}},
		{"policy", c.Destinations["d"].Policy, "weighted"},
		{"failover_on", fmt.Sprint(c.Destinations["d"].FailoverOn), "[486 503]"},
		// timeout 30s is clamped to 64*T1 = 6.4s.
		{"probe", c.Destinations["d"].Probe, Probe{Enabled: true, Interval: 5 * time.Second, Timeout: 6400 * time.Millisecond,
			FailuresToDown: 1, SuccessesToUp: 5, FromURI: "sip:ping@example.net"}},
		{"hop0.weight", c.Destinations["d"].Hops[0].Weight, 3},
		{"hop1", c.Destinations["d"].Hops[1], Hop{URI: "pbx.example.net", Host: "pbx.example.net", Port: 5060,
			Transport: "udp", Addr: netip.MustParseAddrPort("192.0.2.10:5060"), Weight: 1}},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"65535", 65535, true},
		{"8MiB", 8 << 20, true},
		{"512KiB", 512 << 10, true},
		{"1GiB", 1 << 30, true},
		{"9KB", 9000, true},
		{"2MB", 2_000_000, true},
		{"100B", 100, true},
		{"4 KiB", 4096, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1KiB", 0, false},
		{"1.5MiB", 0, false},
		{"8mb", 0, false},
		{"8TiB", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseSize(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseSize(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestHopForms(t *testing.T) {
	tests := []struct {
		uri  string
		want Hop
	}{
		{"127.0.0.1:5070;transport=udp", Hop{Host: "127.0.0.1", Port: 5070, Transport: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:5070")}},
		{"sip:10.0.0.5:5060;transport=tcp", Hop{Host: "10.0.0.5", Port: 5060, Transport: "tcp", Addr: netip.MustParseAddrPort("10.0.0.5:5060")}},
		{"SIP:10.0.0.5;Transport=TCP;lr", Hop{Host: "10.0.0.5", Port: 5060, Transport: "tcp", Addr: netip.MustParseAddrPort("10.0.0.5:5060")}},
		{"10.0.0.5", Hop{Host: "10.0.0.5", Port: 5060, Transport: "udp", Addr: netip.MustParseAddrPort("10.0.0.5:5060")}},
		{"[::1]:5070", Hop{Host: "::1", Port: 5070, Transport: "udp", Addr: netip.MustParseAddrPort("[::1]:5070")}},
		{"sip:[2001:db8::1];transport=tcp", Hop{Host: "2001:db8::1", Port: 5060, Transport: "tcp", Addr: netip.MustParseAddrPort("[2001:db8::1]:5060")}},
		{"pbx.example.net:5060", Hop{Host: "pbx.example.net", Port: 5060, Transport: "udp", Addr: netip.MustParseAddrPort("192.0.2.10:5060")}},
		{"v6.example.net:5061", Hop{Host: "v6.example.net", Port: 5061, Transport: "udp", Addr: netip.MustParseAddrPort("[2001:db8::10]:5061")}},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			h, err := parseHop(tt.uri)
			if err == nil {
				err = resolveHop(testResolver, &h)
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.URI = tt.uri
			if h != tt.want {
				t.Errorf("got %+v, want %+v", h, tt.want)
			}
		})
	}

	bad := map[string]string{
		"":                        "empty hop URI",
		"sips:10.0.0.1":           "sips is not supported (no TLS transport); use sip: with transport=tcp",
		"sip:bob@10.0.0.1":        "a hop must not have a user part",
		"::1":                     "IPv6 addresses must be in brackets, e.g. [::1]:5060",
		"[::1":                    "missing ']' after IPv6 address",
		"[10.0.0.1]:5060":         `invalid IPv6 address "10.0.0.1"`,
		"10.0.0.1:":               "missing port after ':'",
		"10.0.0.1:0":              "port 0 out of range 1-65535",
		"10.0.0.1:abc":            `invalid port "abc"`,
		"bad_host:5060":           `invalid host "bad_host"`,
		"10.0.0.1;transport=tls":  `unsupported transport "tls" (want udp or tcp)`,
		"10.0.0.1;transprot=tcp":  `unsupported URI parameter "transprot" (only transport is allowed)`,
		"10.0.0.1:5060?X-Foo=bar": "a hop must not have URI headers",
	}
	for in, want := range bad {
		if _, err := parseHop(in); err == nil || err.Error() != want {
			t.Errorf("parseHop(%q) error = %v, want %q", in, err, want)
		}
	}
}

// TestErrors asserts the exact FILE:LINE:COL text operators will see.
func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{
			name: "yaml syntax",
			src:  "udp:\n  sockets: 2\n bad: 1\n",
			want: "bad.yaml:3:2: did not find expected key",
		},
		{
			name: "syntax on first line",
			src:  "udp: sockets: 2\n",
			want: "bad.yaml:1:1: mapping values are not allowed in this context",
		},
		{
			name: "unknown top-level key",
			src:  "lsiten:\n  - address: 127.0.0.1:5060\n",
			want: `bad.yaml:1:1: unknown key "lsiten" (did you mean "listen"?)`,
		},
		{
			name: "unknown nested key",
			src:  "udp:\n  sockets: 2\n  sokets: 3\n",
			want: `bad.yaml:3:3: unknown key "sokets" in udp (did you mean "sockets"?)`,
		},
		{
			name: "duplicate key",
			src:  "udp:\n  sockets: 2\n  sockets: 3\n",
			want: `bad.yaml:3:3: udp: duplicate key "sockets" (first at line 2)`,
		},
		{
			name: "wrong type",
			src:  "udp:\n  sockets: two\n",
			want: `bad.yaml:2:12: udp.sockets: want an integer, got "two"`,
		},
		{
			name: "section is not a mapping",
			src:  "timers: [1s]\n",
			want: `bad.yaml:1:9: timers: want a mapping, got a list`,
		},
		{
			name: "out of range",
			src:  "proxy:\n  max_forwards: 300\n",
			want: "bad.yaml:2:17: proxy.max_forwards: 300 out of range 1-255",
		},
		{
			name: "bad duration",
			src:  "timers:\n  t1: 5 sec\n",
			want: `bad.yaml:2:7: timers.t1: invalid duration "5 sec" (want a number with a unit, e.g. 500ms, 4s, 3m)`,
		},
		{
			name: "duration without unit",
			src:  "tcp:\n  idle_timeout: 120\n",
			want: `bad.yaml:2:17: tcp.idle_timeout: invalid duration "120" (want a number with a unit, e.g. 500ms, 4s, 3m)`,
		},
		{
			name: "bad size",
			src:  "udp:\n  recv_buffer: 8 megs\n",
			want: `bad.yaml:2:16: udp.recv_buffer: invalid size "8 megs" (want bytes or a number with B, KiB, MiB, GiB, KB, MB, GB)`,
		},
		{
			name: "bad log level",
			src:  "log: {level: verbose}\n",
			want: `bad.yaml:1:14: log.level: invalid value "verbose" (want debug, info, warn, error)`,
		},
		{
			name: "pin without lock",
			src:  "workers:\n  lock_os_thread: false\n  pin_cpus: true\n",
			want: "bad.yaml:3:13: workers.pin_cpus: requires workers.lock_os_thread: true",
		},
		{
			name: "listen needs IP literal",
			src:  "listen:\n  - address: localhost:5060\n",
			want: `bad.yaml:2:14: listen[0].address: invalid address "localhost:5060" (want IP:port, e.g. 127.0.0.1:5060 or [::1]:5060)`,
		},
		{
			name: "wildcard listen without advertise",
			src:  "listen:\n  - address: 0.0.0.0:5060\n",
			want: "bad.yaml:2:14: listen[0]: advertise is required when listening on 0.0.0.0",
		},
		{
			name: "bad transport in listen",
			src:  "listen:\n  - address: 127.0.0.1:5060\n    transports: [udp, sctp]\n",
			want: `bad.yaml:3:23: listen[0].transports[1]: invalid value "sctp" (want udp, tcp)`,
		},
		{
			name: "unknown destination set",
			src:  "destinations:\n  d:\n    hops: [127.0.0.1:5070]\nroutes:\n  - name: default\n    to: pbx\n",
			want: `bad.yaml:6:9: routes[0].to: unknown destination set "pbx"`,
		},
		{
			name: "missing default route",
			src:  "destinations:\n  d:\n    hops: [127.0.0.1:5070]\nroutes:\n  - name: other\n    to: d\n",
			want: `bad.yaml:4:1: routes: a route named "default" is required (it is used when no other route matches)`,
		},
		{
			name: "empty file",
			src:  "",
			want: `bad.yaml:1:1: routes: a route named "default" is required (it is used when no other route matches)`,
		},
		{
			name: "default route with conditions",
			src:  "destinations:\n  d:\n    hops: [127.0.0.1:5070]\nroutes:\n  - name: default\n    match: {user: bob}\n    to: d\n",
			want: `bad.yaml:6:5: routes[0]: the "default" route must not have match conditions (it is the fallback)`,
		},
		{
			name: "duplicate route name",
			src:  "destinations:\n  d:\n    hops: [127.0.0.1:5070]\nroutes:\n  - {name: default, to: d}\n  - {name: default, to: d}\n",
			want: `bad.yaml:6:12: routes[1].name: duplicate route name "default" (also routes[0])`,
		},
		{
			name: "duplicate destination set",
			src:  "destinations:\n  d:\n    hops: [127.0.0.1:5070]\n  d:\n    hops: [127.0.0.1:5071]\n",
			want: `bad.yaml:4:3: destinations: duplicate set "d" (first at line 2)`,
		},
		{
			name: "bad regex",
			src:  "routes:\n  - name: x\n    match:\n      uri_regex: '^sip:(9'\n    to: d\n",
			want: "bad.yaml:4:18: routes[0].match.uri_regex: error parsing regexp: missing closing ): `^sip:(9`",
		},
		{
			name: "bad hop transport",
			src:  "destinations:\n  d:\n    hops:\n      - 10.0.0.1:5060;transport=sctp\n",
			want: `bad.yaml:4:9: destinations.d.hops[0]: unsupported transport "sctp" (want udp or tcp)`,
		},
		{
			name: "hop port out of range",
			src:  "destinations:\n  d:\n    hops:\n      - uri: 10.0.0.1:70000\n",
			want: "bad.yaml:4:14: destinations.d.hops[0].uri: port 70000 out of range 1-65535",
		},
		{
			name: "hop host does not resolve",
			src:  "destinations:\n  d:\n    hops: [nx.example.net]\nroutes:\n  - {name: default, to: d}\n",
			want: `bad.yaml:3:12: destinations.d.hops[0]: resolve "nx.example.net": lookup nx.example.net: no such host`,
		},
		{
			name: "duplicate hop",
			src:  "destinations:\n  d:\n    hops: [127.0.0.1:5070, 'sip:127.0.0.1:5070;transport=udp']\nroutes:\n  - {name: default, to: d}\n",
			want: `bad.yaml:3:28: destinations.d.hops[1]: duplicate hop udp:127.0.0.1:5070 (same as hops[0])`,
		},
		{
			name: "failover on 2xx",
			src:  "destinations:\n  d:\n    hops: [127.0.0.1:5070]\n    failover_on: [503, 200]\n",
			want: "bad.yaml:4:24: destinations.d.failover_on[1]: 200 out of range 300-699",
		},
		{
			name: "hops missing",
			src:  "destinations:\n  d:\n    policy: weighted\n",
			want: "bad.yaml:2:3: destinations.d: hops is required",
		},
		{
			name: "t2 below t1",
			src:  "timers: {t1: 2s, t2: 1s}\n",
			want: "bad.yaml:1:1: timers: t2 (1s) must not be less than t1 (2s)",
		},
		{
			name: "second document",
			src:  minimal + "---\nudp: {}\n",
			want: "bad.yaml:8:1: only one YAML document is allowed",
		},
		{
			name: "merge keys",
			src:  "udp:\n  <<: {sockets: 2}\n",
			want: `bad.yaml:2:3: unknown key "<<" in udp (YAML merge keys are not supported)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse("bad.yaml", []byte(tt.src), testResolver)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error is %T, want *Error", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sipvigil.yaml")
	if err := os.WriteFile(path, Default(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("udp:\n  sockets: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + `:2:12: udp.sockets: want an integer, got "x"`; err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load missing file = %v, want ErrNotExist", err)
	}
}

func TestOverride(t *testing.T) {
	c := mustParse(t, minimal)
	if err := c.override("[::1]:5099", "sip:pbx.example.net:5080;transport=tcp", testResolver); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.Listen); got != "[{[::1]:5099 [udp tcp] [::1]:5099 ::1 5099}]" {
		t.Errorf("listen = %s", got)
	}
	s := c.Destinations["d"]
	want := Hop{URI: "sip:pbx.example.net:5080;transport=tcp", Host: "pbx.example.net", Port: 5080,
		Transport: "tcp", Addr: netip.MustParseAddrPort("192.0.2.10:5080"), Weight: 1}
	if len(s.Hops) != 1 || s.Hops[0] != want {
		t.Errorf("hops = %+v", s.Hops)
	}
	if s.Probe.FromURI != "sip:sipvigil@[::1]" {
		t.Errorf("from_uri not re-derived: %s", s.Probe.FromURI)
	}

	errs := []struct{ listen, route, want string }{
		{"localhost:5060", "", `--listen: invalid address "localhost:5060" (want IP:port, e.g. 127.0.0.1:5060 or [::1]:5060)`},
		{"0.0.0.0:5060", "", `--listen "0.0.0.0:5060": advertise is required when listening on 0.0.0.0`},
		{"", "10.0.0.1:99999", `--route "10.0.0.1:99999": port 99999 out of range 1-65535`},
		{"", "nx.example.net", `--route "nx.example.net": resolve "nx.example.net": lookup nx.example.net: no such host`},
	}
	for _, tt := range errs {
		c := mustParse(t, minimal)
		if err := c.override(tt.listen, tt.route, testResolver); err == nil || err.Error() != tt.want {
			t.Errorf("override(%q, %q) = %v, want %s", tt.listen, tt.route, err, tt.want)
		}
	}
}

func TestMatchAndRoutes(t *testing.T) {
	c := mustParse(t, `
destinations:
  d: {hops: [127.0.0.1:5070]}
  e: {hops: [127.0.0.1:5071]}
routes:
  - name: default
    to: d
  - name: emerg
    match: {methods: [invite, MESSAGE], user_prefix: "112", host: Example.NET, uri_regex: '^sip:'}
    to: e
  - name: numeric
    match: {user: 1000}
    to: e
`)
	if len(c.Routes) != 3 || c.Routes[0].Name != "default" {
		t.Fatalf("routes = %+v", c.Routes)
	}
	m := c.Routes[1].Match
	if !slices.Equal(m.Methods, []string{"INVITE", "MESSAGE"}) || m.UserPrefix != "112" || m.Host != "Example.NET" ||
		m.URIRegex.String() != "^sip:" {
		t.Errorf("match = %+v", m)
	}
	if c.Routes[2].Match.User != "1000" {
		t.Errorf("numeric user = %q", c.Routes[2].Match.User)
	}
}
