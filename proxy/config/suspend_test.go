package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// head is a valid prefix (two lines) for configs whose errors are found
// only after routes are validated.
const head = "destinations: {d: {hops: [127.0.0.1:5070]}}\nroutes: [{name: default, to: d}]\n"

func TestPipelineValues(t *testing.T) {
	c := mustParse(t, `
destinations:
  d: {hops: [127.0.0.1:5070]}
queues:
  reinvite:
    delay: 10ms
    consumers: 4
    capacity: 100
    max_wait: 2s
    on_full: {code: 486, retry_after: 0s}
  other:
    delay: 0s
    on_full: {code: 480, reason: "Try Later"}
suspend:
  - name: reinvite-delay
    match:
      methods: [invite, INVITE, UPDATE]
      in_dialog: true
      uri_regex: '^sip:'
      header: {name: X-Delay, regex: '^yes$'}
    queue: reinvite
  - name: initial
    match: {in_dialog: false}
    queue: other
  - name: all
    queue: other
lookups:
  pbxrouter:
    url: "http://127.0.0.1:8080/route?ruri={ruri}&from={FROM}"
    timeout: 500ms
    concurrency: 2
    queue_size: 8
    max_wait: 3s
    on_timeout: {code: 408}
    on_error: {code: 503, reason: "Lookup Down", retry_after: 30s}
routes:
  - name: dynamic
    match: {user_prefix: "9"}
    lookup: pbxrouter
  - name: default
    to: d
shutdown: {queued: REJECT}
`)
	wantQ := Queue{Name: "reinvite", Delay: 10 * time.Millisecond, MaxWait: 2 * time.Second, Consumers: 4, Capacity: 100,
		OnFull: Reply{Code: 486, Reason: "Busy Here"}}
	if got := *c.Queues["reinvite"]; got != wantQ {
		t.Errorf("queue reinvite = %+v, want %+v", got, wantQ)
	}
	wantQ = Queue{Name: "other", MaxWait: 5 * time.Second, Consumers: 1, Capacity: 10000,
		OnFull: Reply{Code: 480, Reason: "Try Later", RetryAfter: 5 * time.Second}}
	if got := *c.Queues["other"]; got != wantQ {
		t.Errorf("queue other = %+v, want %+v", got, wantQ)
	}

	if len(c.Suspend) != 3 {
		t.Fatalf("suspend = %+v", c.Suspend)
	}
	r := c.Suspend[0]
	if r.Name != "reinvite-delay" || r.Queue != "reinvite" || !slices.Equal(r.Match.Methods, []string{"INVITE", "UPDATE"}) ||
		r.Match.InDialog == nil || !*r.Match.InDialog || r.Match.URIRegex.String() != "^sip:" ||
		r.Match.HeaderName != "X-Delay" || r.Match.HeaderRegex.String() != "^yes$" || r.Match.IsZero() {
		t.Errorf("suspend[0] = %+v", r)
	}
	if m := c.Suspend[1].Match; m.InDialog == nil || *m.InDialog || m.IsZero() {
		t.Errorf("suspend[1].match = %+v", m)
	}
	if m := c.Suspend[2].Match; !m.IsZero() || c.Suspend[2].Queue != "other" {
		t.Errorf("suspend[2] = %+v", c.Suspend[2])
	}

	wantL := Lookup{Name: "pbxrouter", URL: "http://127.0.0.1:8080/route?ruri={ruri}&from={FROM}",
		Timeout: 500 * time.Millisecond, MaxWait: 3 * time.Second, Concurrency: 2, QueueSize: 8,
		OnTimeout: Reply{Code: 408, Reason: "Request Timeout"},
		OnError:   Reply{Code: 503, Reason: "Lookup Down", RetryAfter: 30 * time.Second}}
	if got := *c.Lookups["pbxrouter"]; got != wantL {
		t.Errorf("lookup = %+v, want %+v", got, wantL)
	}
	if rt := c.Routes[0]; rt.Lookup != "pbxrouter" || rt.To != "" {
		t.Errorf("routes[0] = %+v", rt)
	}
	if rt := c.DefaultRoute(); rt.To != "d" || rt.Lookup != "" {
		t.Errorf("default route = %+v", rt)
	}
	if c.Shutdown.Queued != ShutdownReject {
		t.Errorf("shutdown.queued = %q", c.Shutdown.Queued)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
}

func TestPipelineDefaults(t *testing.T) {
	c := mustParse(t, head+`
queues: {q: {delay: 1ms}}
suspend: [{name: r, queue: q}]
lookups: {l: {url: "https://lookup.example.net/r"}}
`)
	if got, want := *c.Queues["q"], (Queue{Name: "q", Delay: time.Millisecond, MaxWait: 5 * time.Second, Consumers: 1,
		Capacity: 10000, OnFull: Reply{Code: 503, Reason: "Queue Full", RetryAfter: 5 * time.Second}}); got != want {
		t.Errorf("queue = %+v, want %+v", got, want)
	}
	if got, want := *c.Lookups["l"], (Lookup{Name: "l", URL: "https://lookup.example.net/r", Timeout: time.Second,
		MaxWait: 5 * time.Second, Concurrency: 16, QueueSize: 1024,
		OnTimeout: Reply{Code: 504, Reason: "Route Lookup Timeout"},
		OnError:   Reply{Code: 500, Reason: "Route Lookup Failed"}}); got != want {
		t.Errorf("lookup = %+v, want %+v", got, want)
	}
	if c.Shutdown.Queued != ShutdownRelease {
		t.Errorf("shutdown.queued = %q", c.Shutdown.Queued)
	}
	// The lookup is defined but unused: a warning, not an error.
	if want := []string{"test.yaml:6:11: lookups.l: not used by any route"}; !slices.Equal(c.Warnings, want) {
		t.Errorf("warnings = %q, want %q", c.Warnings, want)
	}

	// Without the sections, nothing is allocated or warned about.
	c = mustParse(t, minimal)
	if c.Queues != nil || c.Suspend != nil || c.Lookups != nil || c.Warnings != nil {
		t.Errorf("empty pipeline = %v %v %v %v", c.Queues, c.Suspend, c.Lookups, c.Warnings)
	}
}

func TestWarnings(t *testing.T) {
	src := "destinations: {d: {hops: [127.0.0.1:5070]}}\nroutes: [{name: default, lookup: l}]\n" + `queues:
  q: {delay: 5s, max_wait: 5s}
  unused: {delay: 0s}
suspend:
  - {name: r, queue: q}
lookups:
  l: {url: 'http://127.0.0.1/r', timeout: 3s, max_wait: 2s}
  slow: {url: 'http://127.0.0.1/s', timeout: 5s}
`
	c, err := parse("test.yaml", []byte(src), testResolver)
	if err != nil {
		t.Fatalf("warnings must not fail the parse: %v", err)
	}
	want := []string{
		"test.yaml:4:28: queues.q: delay 5s is not less than max_wait 5s: every request suspended in this queue will be answered 408 instead of being released",
		"test.yaml:5:3: queues.unused: not used by any suspend rule",
		"test.yaml:9:57: lookups.l: timeout 3s is not less than max_wait 2s: the suspended transaction gives up before the HTTP request times out",
		"test.yaml:10:3: lookups.slow: not used by any route",
		"test.yaml:10:46: lookups.slow: timeout 5s is not less than max_wait 5s: the suspended transaction gives up before the HTTP request times out",
	}
	if !slices.Equal(c.Warnings, want) {
		t.Errorf("warnings:\n got %s\nwant %s", strings.Join(c.Warnings, "\n     "), strings.Join(want, "\n     "))
	}
	// The values stand as written.
	if q := c.Queues["q"]; q.Delay != 5*time.Second || q.MaxWait != 5*time.Second {
		t.Errorf("queue = %+v", q)
	}
}

// TestPipelineErrors asserts the exact FILE:LINE:COL texts.
func TestPipelineErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{
			name: "unknown queue in a rule",
			src:  head + "queues: {q: {delay: 0s}}\nsuspend:\n  - name: r\n    queue: nope\n",
			want: `bad.yaml:6:12: suspend[0].queue: unknown queue "nope" (defined: q)`,
		},
		{
			name: "unknown queue without queues",
			src:  head + "suspend:\n  - {name: r, queue: q}\n",
			want: `bad.yaml:4:22: suspend[0].queue: unknown queue "q" (no queues are defined)`,
		},
		{
			name: "unknown lookup in a route",
			src:  "destinations: {d: {hops: [127.0.0.1:5070]}}\nroutes:\n  - name: default\n    lookup: pbx\n",
			want: `bad.yaml:4:13: routes[0].lookup: unknown lookup "pbx" (no lookups are defined)`,
		},
		{
			name: "both to and lookup",
			src:  "routes:\n  - name: x\n    to: d\n    lookup: l\n",
			want: "bad.yaml:4:13: routes[0]: to and lookup are mutually exclusive (a route sends to a destination set or asks a lookup, not both)",
		},
		{
			name: "both, lookup first",
			src:  "routes:\n  - {name: x, lookup: l, to: d}\n",
			want: "bad.yaml:2:30: routes[0]: to and lookup are mutually exclusive (a route sends to a destination set or asks a lookup, not both)",
		},
		{
			name: "neither to nor lookup",
			src:  "routes:\n  - name: x\n    match: {user: a}\n",
			want: "bad.yaml:2:5: routes[0]: to or lookup is required (the destination set to use, or the route lookup to ask)",
		},
		{
			name: "bad reply code",
			src:  "queues:\n  q:\n    delay: 0s\n    on_full: {code: 200}\n",
			want: "bad.yaml:4:21: queues.q.on_full.code: 200 out of range 300-699",
		},
		{
			name: "bad lookup reply code",
			src:  "lookups:\n  l:\n    url: http://x/\n    on_error: {code: 700}\n",
			want: "bad.yaml:4:22: lookups.l.on_error.code: 700 out of range 300-699",
		},
		{
			name: "code without a standard phrase",
			src:  "queues:\n  q: {delay: 0s, on_full: {code: 499}}\n",
			want: "bad.yaml:2:34: queues.q.on_full: reason is required for code 499 (it has no standard reason phrase)",
		},
		{
			name: "retry_after not whole seconds",
			src:  "queues:\n  q:\n    delay: 0s\n    on_full: {retry_after: 1500ms}\n",
			want: "bad.yaml:4:28: queues.q.on_full.retry_after: 1500ms is not a whole number of seconds",
		},
		{
			name: "reason with a line break",
			src:  "queues:\n  q:\n    delay: 0s\n    on_full: {reason: \"Full\\r\\nX-Evil: 1\"}\n",
			want: "bad.yaml:4:23: queues.q.on_full.reason: control characters are not allowed in a reason phrase",
		},
		{
			name: "bad suspend uri regex",
			src:  "suspend:\n  - name: r\n    match: {uri_regex: '(x'}\n    queue: q\n",
			want: "bad.yaml:3:24: suspend[0].match.uri_regex: error parsing regexp: missing closing ): `(x`",
		},
		{
			name: "bad header regex",
			src:  "suspend:\n  - name: r\n    match:\n      header: {name: X-A, regex: '[a'}\n    queue: q\n",
			want: "bad.yaml:4:34: suspend[0].match.header.regex: error parsing regexp: missing closing ]: `[a`",
		},
		{
			name: "header without regex",
			src:  "suspend:\n  - name: r\n    match:\n      header: {name: X-A}\n    queue: q\n",
			want: "bad.yaml:4:15: suspend[0].match.header: regex is required (use '^' to require only that the header exists)",
		},
		{
			name: "header without name",
			src:  "suspend:\n  - name: r\n    match:\n      header: {regex: a}\n    queue: q\n",
			want: "bad.yaml:4:15: suspend[0].match.header: name is required",
		},
		{
			name: "bad header name",
			src:  "suspend:\n  - name: r\n    match:\n      header: {name: 'X Delay', regex: a}\n    queue: q\n",
			want: `bad.yaml:4:22: suspend[0].match.header.name: invalid header name "X Delay"`,
		},
		{
			name: "ACK cannot be suspended",
			src:  "suspend:\n  - name: r\n    match: {methods: [INVITE, ack]}\n    queue: q\n",
			want: "bad.yaml:3:31: suspend[0].match.methods[1]: ACK cannot be suspended (no transaction holds it: it is absorbed, or forwarded statelessly)",
		},
		{
			name: "CANCEL cannot be suspended",
			src:  "suspend:\n  - name: r\n    match:\n      methods:\n        - CANCEL\n    queue: q\n",
			want: "bad.yaml:5:11: suspend[0].match.methods[0]: CANCEL cannot be suspended (the proxy answers it at once and cancels the request it refers to)",
		},
		{
			name: "in_dialog not a bool",
			src:  "suspend:\n  - name: r\n    match: {in_dialog: maybe}\n    queue: q\n",
			want: `bad.yaml:3:24: suspend[0].match.in_dialog: want true or false, got "maybe"`,
		},
		{
			name: "unknown key in suspend match",
			src:  "suspend:\n  - name: r\n    match: {method: [INVITE]}\n    queue: q\n",
			want: `bad.yaml:3:13: unknown key "method" in suspend[0].match (did you mean "methods"?)`,
		},
		{
			name: "rule without queue",
			src:  "suspend:\n  - name: r\n",
			want: "bad.yaml:2:5: suspend[0]: queue is required (the queue that holds matching requests)",
		},
		{
			name: "rule without name",
			src:  "suspend:\n  - queue: q\n",
			want: "bad.yaml:2:5: suspend[0]: name is required",
		},
		{
			name: "duplicate rule name",
			src:  "suspend:\n  - {name: r, queue: q}\n  - {name: r, queue: q}\n",
			want: `bad.yaml:3:12: suspend[1].name: duplicate rule name "r" (also suspend[0])`,
		},
		{
			name: "suspend is not a list",
			src:  "suspend: {name: r}\n",
			want: "bad.yaml:1:10: suspend: want a list, got a mapping",
		},
		{
			name: "bad url scheme",
			src:  "lookups:\n  l:\n    url: ftp://x/y\n",
			want: `bad.yaml:3:10: lookups.l.url: unsupported scheme "ftp" in "ftp://x/y" (want http or https)`,
		},
		{
			name: "url without scheme",
			src:  "lookups:\n  l: {url: '127.0.0.1:8080/r'}\n",
			want: `bad.yaml:2:12: lookups.l.url: invalid URL "127.0.0.1:8080/r": missing scheme (want http:// or https://)`,
		},
		{
			name: "url without host",
			src:  "lookups:\n  l: {url: 'http:///r'}\n",
			want: `bad.yaml:2:12: lookups.l.url: invalid URL "http:///r": missing host`,
		},
		{
			name: "placeholder in host",
			src:  "lookups:\n  l: {url: 'http://{host}/r'}\n",
			want: `bad.yaml:2:12: lookups.l.url: invalid URL "http://{host}/r": placeholders are allowed only in the path and query`,
		},
		{
			name: "unknown placeholder",
			src:  "lookups:\n  l: {url: 'http://x/r?u={usr}'}\n",
			want: "bad.yaml:2:12: lookups.l.url: unknown placeholder {usr} (valid: {method}, {ruri}, {user}, {host}, {from}, {to}, {callid}, {source})",
		},
		{
			name: "unterminated placeholder",
			src:  "lookups:\n  l: {url: 'http://x/r?u={user'}\n",
			want: `bad.yaml:2:12: lookups.l.url: unterminated placeholder "{user" (want {name})`,
		},
		{
			name: "user info in url",
			src:  "lookups:\n  l: {url: 'http://u:p@x/r'}\n",
			want: `bad.yaml:2:12: lookups.l.url: invalid URL "http://u:p@x/r": user info (user:password@) is not supported`,
		},
		{
			name: "lookup without url",
			src:  "lookups:\n  l: {timeout: 2s}\n",
			want: "bad.yaml:2:3: lookups.l: url is required",
		},
		{
			name: "lookup concurrency 0",
			src:  "lookups:\n  l: {url: 'http://x/', concurrency: 0}\n",
			want: "bad.yaml:2:38: lookups.l.concurrency: 0 out of range 1-4096",
		},
		{
			name: "consumers 0",
			src:  "queues:\n  q: {delay: 0s, consumers: 0}\n",
			want: "bad.yaml:2:29: queues.q.consumers: 0 out of range 1-1024",
		},
		{
			name: "capacity 0",
			src:  "queues:\n  q:\n    delay: 0s\n    capacity: 0\n",
			want: "bad.yaml:4:15: queues.q.capacity: 0 out of range 1-16777216",
		},
		{
			name: "delay required",
			src:  "queues:\n  q: {capacity: 5}\n",
			want: "bad.yaml:2:3: queues.q: delay is required (how long each suspended request is held; 0s releases it as soon as a consumer is free)",
		},
		{
			name: "negative delay",
			src:  "queues:\n  q: {delay: -1s}\n",
			want: "bad.yaml:2:14: queues.q.delay: duration -1s must not be negative",
		},
		{
			name: "max_wait 0",
			src:  "queues:\n  q: {delay: 0s, max_wait: 0s}\n",
			want: "bad.yaml:2:28: queues.q.max_wait: duration 0s must be at least 1ms",
		},
		{
			name: "unknown key in queue",
			src:  "queues:\n  q:\n    delay: 0s\n    dealy: 1s\n",
			want: `bad.yaml:4:5: unknown key "dealy" in queues.q (did you mean "delay"?)`,
		},
		{
			name: "duplicate queue",
			src:  "queues:\n  q: {delay: 0s}\n  q: {delay: 1s}\n",
			want: `bad.yaml:3:3: queues: duplicate queue "q" (first at line 2)`,
		},
		{
			name: "queues is not a mapping",
			src:  "queues: [a]\n",
			want: "bad.yaml:1:9: queues: want a mapping of queue name to queue, got a list",
		},
		{
			name: "queued: foo",
			src:  "shutdown:\n  queued: foo\n",
			want: `bad.yaml:2:11: shutdown.queued: invalid value "foo" (want release, reject)`,
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

func TestReasonPhrases(t *testing.T) {
	for code, phrase := range reasonPhrases {
		if code < 300 || code > 699 || phrase == "" {
			t.Errorf("reasonPhrases[%d] = %q", code, phrase)
		}
	}
}

func TestOverrideLookupDefaultRoute(t *testing.T) {
	c := mustParse(t, "lookups: {l: {url: 'http://127.0.0.1/r'}}\nroutes: [{name: default, lookup: l}]\n")
	err := c.override("", "10.0.0.1:5060", testResolver)
	if want := `--route: the "default" route asks lookup "l", it has no destination set to replace`; err == nil || err.Error() != want {
		t.Errorf("override = %v, want %s", err, want)
	}
	// --listen alone still works.
	if err := c.override("127.0.0.1:5099", "", testResolver); err != nil {
		t.Error(err)
	}
}

// commentedBlock returns the commented-out YAML block of default.yaml
// that starts with the line "# "+first, uncommented.
func commentedBlock(t *testing.T, first string) string {
	t.Helper()
	lines := strings.Split(string(Default()), "\n")
	start := slices.Index(lines, "# "+first)
	if start < 0 {
		t.Fatalf("default.yaml has no line %q", "# "+first)
	}
	var b strings.Builder
	for _, l := range lines[start:] {
		if !strings.HasPrefix(l, "# ") {
			break
		}
		b.WriteString(strings.TrimPrefix(l, "# "))
		b.WriteByte('\n')
	}
	return b.String()
}

// TestDefaultLookupDoc guards the commented lookup reference in
// default.yaml: it must parse, and its values must be the defaults.
func TestDefaultLookupDoc(t *testing.T) {
	block := commentedBlock(t, "lookups:")
	full := mustParse(t, "routes: [{name: default, lookup: pbxrouter}]\n"+block)
	min := mustParse(t, "routes: [{name: default, lookup: pbxrouter}]\nlookups: {pbxrouter: {url: 'http://127.0.0.1:8080/route?ruri={ruri}&from={from}'}}\n")
	if *full.Lookups["pbxrouter"] != *min.Lookups["pbxrouter"] {
		t.Errorf("documented lookup disagrees with defaults:\n%+v\n%+v", *full.Lookups["pbxrouter"], *min.Lookups["pbxrouter"])
	}
	if len(full.Warnings) != 0 {
		t.Errorf("warnings: %q", full.Warnings)
	}
}
