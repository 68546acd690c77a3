package route

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/config"
)

const suspendConfig = `
destinations:
  pbx: {hops: [127.0.0.1:5070]}
lookups:
  pbxrouter: {url: "http://127.0.0.1:8080/route?ruri={ruri}"}
queues:
  reinvite: {delay: 10ms}
  tagged: {delay: 0s}
  slow: {delay: 100ms}
  initial: {delay: 1ms}
routes:
  - name: dynamic
    match: {user_prefix: "9"}
    lookup: pbxrouter
  - name: default
    to: pbx
suspend:
  - name: reinvite-delay
    match: {methods: [INVITE], in_dialog: true}
    queue: reinvite
  - name: header
    match:
      header: {name: x-delay, regex: '^yes$'}
    queue: tagged
  - name: subject
    match:
      methods: [MESSAGE]
      header: {name: Subject, regex: 'urgent'}
    queue: tagged
  - name: slow-lane
    match: {uri_regex: '^sip:slow@'}
    queue: slow
  - name: initial-bye
    match: {methods: [BYE], in_dialog: false}
    queue: initial
  - name: first-wins
    match: {methods: [INFO]}
    queue: tagged
  - name: shadowed
    match: {methods: [INFO]}
    queue: slow
`

func newSuspendRouter(t testing.TB, src string) *Router {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg)
}

// request parses a request with the given request line, To tag (none if
// empty) and extra header lines.
func request(t testing.TB, line, toTag string, extra ...string) *sip.Request {
	t.Helper()
	to := "To: <sip:bob@example.com>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	method, _, _ := strings.Cut(line, " ")
	lines := []string{
		line + " SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1",
		"Max-Forwards: 70",
		"From: <sip:alice@example.com>;tag=a",
		to,
		"Call-ID: c1@192.0.2.1",
		"CSeq: 1 " + method,
	}
	lines = append(lines, extra...)
	lines = append(lines, "Content-Length: 0", "", "")
	msg, err := sip.ParseMessage([]byte(strings.Join(lines, "\r\n")))
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	return msg.(*sip.Request)
}

func TestSuspendQueue(t *testing.T) {
	r := newSuspendRouter(t, suspendConfig)
	tests := []struct {
		name        string
		line, toTag string
		extra       []string
		method      sip.RequestMethod // overrides the parsed method
		rule, queue string
	}{
		{name: "re-INVITE", line: "INVITE sip:bob@192.0.2.2", toTag: "b", rule: "reinvite-delay", queue: "reinvite"},
		{name: "initial INVITE", line: "INVITE sip:bob@192.0.2.2"},
		{name: "in-dialog BYE", line: "BYE sip:bob@192.0.2.2", toTag: "b"},
		{name: "initial BYE", line: "BYE sip:bob@192.0.2.2", rule: "initial-bye", queue: "initial"},
		{name: "header matches", line: "OPTIONS sip:bob@192.0.2.2", extra: []string{"X-Delay: yes"},
			rule: "header", queue: "tagged"},
		{name: "header name any case", line: "OPTIONS sip:bob@192.0.2.2", extra: []string{"X-DELAY: yes"},
			rule: "header", queue: "tagged"},
		{name: "header value differs", line: "OPTIONS sip:bob@192.0.2.2", extra: []string{"X-Delay: no"}},
		{name: "header missing", line: "OPTIONS sip:bob@192.0.2.2"},
		{name: "first header counts", line: "OPTIONS sip:bob@192.0.2.2", extra: []string{"X-Delay: no", "X-Delay: yes"}},
		{name: "regex on value", line: "MESSAGE sip:bob@192.0.2.2", extra: []string{"Subject: very urgent"},
			rule: "subject", queue: "tagged"},
		{name: "compact header form", line: "MESSAGE sip:bob@192.0.2.2", extra: []string{"s: urgent"},
			rule: "subject", queue: "tagged"},
		{name: "header rule and method", line: "INFO sip:bob@192.0.2.2", extra: []string{"Subject: urgent"},
			rule: "first-wins", queue: "tagged"},
		{name: "uri regex", line: "OPTIONS sip:slow@192.0.2.2;transport=udp", rule: "slow-lane", queue: "slow"},
		{name: "uri regex no match", line: "OPTIONS sip:fast@192.0.2.2"},
		// Earlier rules win even when a later one also matches.
		{name: "first rule wins over uri regex", line: "INVITE sip:slow@192.0.2.2", toTag: "b",
			rule: "reinvite-delay", queue: "reinvite"},
		{name: "first rule wins", line: "INFO sip:bob@192.0.2.2", toTag: "b", rule: "first-wins", queue: "tagged"},
		// ACK and CANCEL never match, even a rule without methods.
		{name: "ACK", line: "ACK sip:slow@192.0.2.2", toTag: "b", extra: []string{"X-Delay: yes"}},
		{name: "CANCEL", line: "CANCEL sip:slow@192.0.2.2", extra: []string{"X-Delay: yes"}},
		// Methods are case-sensitive on the wire (sipgo's parser upper-cases
		// them, but a Request built in code may not be).
		{name: "lower-case method", line: "INVITE sip:bob@192.0.2.2", toTag: "b", method: "invite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(t, tt.line, tt.toTag, tt.extra...)
			if tt.method != "" {
				req.Method = tt.method
			}
			rule, queue := r.SuspendRule(req)
			if rule != tt.rule || queue != tt.queue {
				t.Errorf("SuspendRule = %q, %q; want %q, %q", rule, queue, tt.rule, tt.queue)
			}
			if q := r.SuspendQueue(req); q != tt.queue {
				t.Errorf("SuspendQueue = %q, want %q", q, tt.queue)
			}
		})
	}
}

func TestSuspendQueueNilTo(t *testing.T) {
	cfg := `
destinations: {pbx: {hops: [127.0.0.1:5070]}}
routes: [{name: default, to: pbx}]
queues: {q: {delay: 0s}, i: {delay: 0s}}
suspend:
  - {name: in, match: {in_dialog: true}, queue: q}
  - {name: initial, match: {in_dialog: false}, queue: i}
`
	r := newSuspendRouter(t, cfg)
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "bob", Host: "192.0.2.2"})
	if req.To() != nil {
		t.Fatal("request has a To")
	}
	// No To means no tag: treated as an initial request, without panicking.
	if q := r.SuspendQueue(req); q != "i" {
		t.Errorf("SuspendQueue(no To) = %q, want %q", q, "i")
	}
	if q := r.SuspendQueue(nil); q != "" {
		t.Errorf("SuspendQueue(nil) = %q", q)
	}
}

func TestSuspendQueueNoRules(t *testing.T) {
	r := newRouter(t)
	req := request(t, "INVITE sip:bob@192.0.2.2", "b", "X-Delay: yes")
	if q := r.SuspendQueue(req); q != "" {
		t.Errorf("SuspendQueue = %q, want none", q)
	}
	if n := testing.AllocsPerRun(100, func() { r.SuspendQueue(req) }); n != 0 {
		t.Errorf("SuspendQueue without rules allocates %v times", n)
	}
}

// A rule set that does not match on method or in_dialog must not
// allocate either: that is every BYE and ACK under the default recipe.
func TestSuspendQueueNoMatchDoesNotAllocate(t *testing.T) {
	r := newSuspendRouter(t, string(config.Default()))
	for _, tc := range []struct{ line, tag string }{
		{"INVITE sip:bob@192.0.2.2", ""},
		{"BYE sip:bob@192.0.2.2", "b"},
		{"ACK sip:bob@192.0.2.2", "b"},
	} {
		req := request(t, tc.line, tc.tag)
		if q := r.SuspendQueue(req); q != "" {
			t.Errorf("%s: SuspendQueue = %q, want none", tc.line, q)
		}
		if n := testing.AllocsPerRun(100, func() { r.SuspendQueue(req) }); n != 0 {
			t.Errorf("%s: SuspendQueue allocates %v times", tc.line, n)
		}
	}
	if q := r.SuspendQueue(request(t, "INVITE sip:bob@192.0.2.2", "b")); q != "reinvite" {
		t.Errorf("default recipe: re-INVITE queue = %q, want reinvite", q)
	}
}

func TestRouteLookup(t *testing.T) {
	r := newSuspendRouter(t, suspendConfig)
	rt := r.Match("INVITE", uri(t, "sip:9123@example.com"))
	if rt.Name != "dynamic" || rt.Lookup != "pbxrouter" || rt.Set != nil {
		t.Errorf("Match(9123) = %+v, want route dynamic with lookup pbxrouter and no set", rt)
	}
	rt = r.Match("INVITE", uri(t, "sip:5555@example.com"))
	if rt.Name != "default" || rt.Lookup != "" || rt.Set == nil || rt.Set.Name != "pbx" {
		t.Errorf("Match(5555) = %+v, want the default route to set pbx", rt)
	}

	// The default route may use a lookup too.
	r = newSuspendRouter(t, `
destinations: {pbx: {hops: [127.0.0.1:5070]}}
lookups: {l: {url: "https://lookup.example.net/r?u={user}"}}
routes:
  - {name: pbx, match: {user: "100"}, to: pbx}
  - {name: default, lookup: l}
`)
	if rt := r.Match("INVITE", uri(t, "sip:200@example.com")); rt.Name != "default" || rt.Lookup != "l" || rt.Set != nil {
		t.Errorf("default lookup route = %+v", rt)
	}
	if rt := r.Match("INVITE", uri(t, "sip:100@example.com")); rt.Name != "pbx" || rt.Set == nil {
		t.Errorf("pbx route = %+v", rt)
	}
}

func TestCompactAlias(t *testing.T) {
	for in, want := range map[string]string{
		"s": "Subject", "Subject": "s", "SUBJECT": "s", "T": "To", "call-id": "i", "X-Delay": "",
	} {
		if got := compactAlias(in); got != want {
			t.Errorf("compactAlias(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkSuspendQueueNoMatch(b *testing.B) {
	for _, bc := range []struct{ name, cfg string }{
		{"no-rules", testConfig},
		{"default-recipe", string(config.Default())},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newSuspendRouter(b, bc.cfg)
			req := request(b, "BYE sip:bob@192.0.2.2", "b")
			b.ReportAllocs()
			for b.Loop() {
				if r.SuspendQueue(req) != "" {
					b.Fatal("matched")
				}
			}
		})
	}
}

func BenchmarkSuspendQueueMatch(b *testing.B) {
	r := newSuspendRouter(b, string(config.Default()))
	req := request(b, "INVITE sip:bob@192.0.2.2", "b")
	b.ReportAllocs()
	for b.Loop() {
		if r.SuspendQueue(req) != "reinvite" {
			b.Fatal("no match")
		}
	}
}
