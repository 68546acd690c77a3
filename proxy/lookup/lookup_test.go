package lookup

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testLog sends the client's log to the test output, debug included, so a
// failing test shows why.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start builds a Client for cfg and runs it until the test ends. The
// returned stop cancels Run and waits for it to return.
func start(t *testing.T, cfg Config) (*Client, func()) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	c, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		c.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-ran:
			case <-time.After(2 * time.Second):
				t.Errorf("Run did not return within 2s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// lookup performs one lookup and waits for its Result.
func lookup(t *testing.T, c *Client, req Request) Result {
	t.Helper()
	ch := make(chan Result, 2)
	if !c.Lookup(req, func(r Result) { ch <- r }) {
		t.Fatalf("Lookup returned false")
	}
	var r Result
	select {
	case r = <-ch:
	case <-time.After(2 * time.Second):
		t.Fatalf("done not called within 2s")
	}
	select {
	case r2 := <-ch:
		t.Fatalf("done called twice: %+v and %+v", r, r2)
	case <-time.After(10 * time.Millisecond):
	}
	return r
}

// serve starts a loopback HTTP server answering every request with
// status and body.
func serve(t *testing.T, status int, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHops(t *testing.T) {
	var accept atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept.Store(r.Header.Get("Accept"))
		io.WriteString(w, `{"hops": ["10.0.0.5:5060;transport=udp", "sip:10.0.0.6", "[2001:db8::7]:5080;transport=tcp"], "ttl": 30}`)
	}))
	t.Cleanup(srv.Close)
	c, _ := start(t, Config{URL: srv.URL + "/route?u={user}"})

	r := lookup(t, c, Request{User: "alice"})
	if r.Outcome != OutcomeOK || r.Reply != nil || r.Err != nil {
		t.Fatalf("got outcome %q reply %+v err %v, want ok with hops", r.Outcome, r.Reply, r.Err)
	}
	want := []struct {
		addr      string
		transport string
	}{
		{"10.0.0.5:5060", "udp"},
		{"10.0.0.6:5060", "udp"},
		{"[2001:db8::7]:5080", "tcp"},
	}
	if len(r.Hops) != len(want) {
		t.Fatalf("got %d hops %+v, want %d", len(r.Hops), r.Hops, len(want))
	}
	for i, w := range want {
		h := r.Hops[i]
		if h.Addr != netip.MustParseAddrPort(w.addr) || h.Transport != w.transport {
			t.Errorf("hop %d = %v %s, want %s %s", i, h.Addr, h.Transport, w.addr, w.transport)
		}
	}
	if got := accept.Load(); got != "application/json" {
		t.Errorf("Accept = %q, want application/json", got)
	}
	if r.Elapsed <= 0 || r.Wait < 0 || r.Wait > r.Elapsed {
		t.Errorf("Elapsed %v, Wait %v: want 0 <= Wait <= Elapsed, Elapsed > 0", r.Elapsed, r.Wait)
	}
	st := c.Stats()
	if st.Requests != 1 || st.OK != 1 || st.Errors != 0 || st.InFlight != 0 || st.Queued != 0 {
		t.Errorf("stats = %+v", st)
	}
	var n uint64
	for _, v := range st.Latency {
		n += v
	}
	if n != 1 {
		t.Errorf("latency histogram holds %d lookups, want 1", n)
	}
}

func TestReply(t *testing.T) {
	for _, tc := range []struct {
		body string
		want Reply
	}{
		{`{"reply": {"code": 404, "reason": "Not Found"}}`, Reply{404, "Not Found"}},
		{`{"reply": {"code": 486}}`, Reply{486, "Busy Here"}},
		{`{"reply": {"code": 699}}`, Reply{699, "Global Failure"}},
		{`{"reply": {"code": 302, "reason": "Ported"}}`, Reply{302, "Ported"}},
	} {
		srv := serve(t, http.StatusOK, tc.body)
		c, _ := start(t, Config{URL: srv.URL})
		r := lookup(t, c, Request{})
		if r.Outcome != OutcomeReply || r.Hops != nil || r.Err != nil || r.Reply == nil || *r.Reply != tc.want {
			t.Errorf("%s: got outcome %q reply %+v hops %v err %v, want reply %+v", tc.body, r.Outcome, r.Reply, r.Hops, r.Err, tc.want)
		}
		if st := c.Stats(); st.Replies != 1 {
			t.Errorf("%s: Replies = %d, want 1", tc.body, st.Replies)
		}
	}
}

func TestPlaceholders(t *testing.T) {
	req := Request{
		Method: "INVITE",
		RURI:   "sip:+4930123@pbx.example.net;user=phone",
		User:   "+4930123",
		Host:   "pbx.example.net",
		From:   "sip:alice smith@example.org",
		To:     "sip:+4930123@example.net",
		CallID: "a84b4c76e66710@pc33&x=1",
		Source: "[2001:db8::1]:5060",
	}
	type seen struct {
		path, raw string
		q         map[string][]string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.URL.Path, r.URL.RawQuery, r.URL.Query()}
		io.WriteString(w, `{"hops": ["10.0.0.5"]}`)
	}))
	t.Cleanup(srv.Close)
	c, _ := start(t, Config{URL: srv.URL + "/v1/{method}?ruri={ruri}&user={user}&host={HOST}&from={from}&to={to}&callid={callid}&src={source}&lit=a%20b"})

	if r := lookup(t, c, req); r.Outcome != OutcomeOK {
		t.Fatalf("outcome %q err %v", r.Outcome, r.Err)
	}
	s := <-got
	if s.path != "/v1/INVITE" {
		t.Errorf("path = %q, want /v1/INVITE", s.path)
	}
	for key, want := range map[string]string{
		"ruri": req.RURI, "user": req.User, "host": req.Host, "from": req.From,
		"to": req.To, "callid": req.CallID, "src": req.Source, "lit": "a b",
	} {
		if v := s.q[key]; len(v) != 1 || v[0] != want {
			t.Errorf("query %s = %q, want [%q]", key, v, want)
		}
	}
	// The escaping is what the contract promises operators.
	for _, frag := range []string{"user=%2B4930123", "from=sip%3Aalice+smith%40example.org", "callid=a84b4c76e66710%40pc33%26x%3D1", "src=%5B2001%3Adb8%3A%3A1%5D%3A5060"} {
		if !strings.Contains(s.raw, frag) {
			t.Errorf("raw query %q lacks %q", s.raw, frag)
		}
	}
	if len(s.q) != 8 {
		t.Errorf("query has %d keys, want 8 (an injected '&' split a value?): %v", len(s.q), s.q)
	}
}

func TestTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
		io.WriteString(w, `{"hops": ["10.0.0.5"]}`)
	}))
	t.Cleanup(srv.Close)
	c, _ := start(t, Config{URL: srv.URL, Timeout: 100 * time.Millisecond})

	t0 := time.Now()
	r := lookup(t, c, Request{})
	if r.Outcome != OutcomeTimeout || r.Reply == nil || *r.Reply != (Reply{504, "Route Lookup Timeout"}) || r.Hops != nil {
		t.Fatalf("got outcome %q reply %+v hops %v, want timeout 504", r.Outcome, r.Reply, r.Hops)
	}
	if r.Err == nil || !strings.Contains(r.Err.Error(), "no answer within 100ms") {
		t.Errorf("Err = %v, want it to name the timeout", r.Err)
	}
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Errorf("timeout took %v, want about 100ms", d)
	}
	if st := c.Stats(); st.Timeouts != 1 {
		t.Errorf("Timeouts = %d, want 1", st.Timeouts)
	}
}

// TestTimeoutDuringBody: the headers come in time but the body does not;
// Timeout covers the body read too.
func TestTimeoutDuringBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"hops": [`)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	c, _ := start(t, Config{URL: srv.URL, Timeout: 100 * time.Millisecond, OnTimeout: Reply{Code: 503}})

	r := lookup(t, c, Request{})
	if r.Outcome != OutcomeTimeout || r.Reply == nil || *r.Reply != (Reply{503, "Service Unavailable"}) {
		t.Fatalf("got outcome %q reply %+v err %v, want timeout with the configured 503", r.Outcome, r.Reply, r.Err)
	}
}

func TestErrors(t *testing.T) {
	huge := `{"hops": ["10.0.0.5"], "pad": "` + strings.Repeat("x", MaxBodySize) + `"}`
	for _, tc := range []struct {
		name   string
		status int
		body   string
		errHas string
	}{
		{"non-2xx", http.StatusServiceUnavailable, `{"error": "db down"}`, "status 503 Service Unavailable: \"{\\\"error\\\": \\\"db down\\\"}\""},
		{"404", http.StatusNotFound, `{"reply": {"code": 404}}`, "status 404"},
		{"bad json", http.StatusOK, `{"hops": ["10.0.0.5"]`, "invalid JSON"},
		{"not an object", http.StatusOK, `["10.0.0.5"]`, "invalid JSON"},
		{"empty body", http.StatusOK, ``, "invalid JSON"},
		{"host name hop", http.StatusOK, `{"hops": ["10.0.0.5", "pbx.example.net:5060"]}`, `hop 2: hop "pbx.example.net:5060": an IP address is required`},
		{"bad hop", http.StatusOK, `{"hops": ["10.0.0.5;transport=sctp"]}`, `hop 1 "10.0.0.5;transport=sctp": unsupported transport`},
		{"huge body", http.StatusOK, huge, "body larger than 65536 bytes"},
		{"empty hops", http.StatusOK, `{"hops": []}`, `"hops" is empty`},
		{"neither", http.StatusOK, `{"route": "10.0.0.5"}`, "neither"},
		{"null", http.StatusOK, `null`, "neither"},
		{"both", http.StatusOK, `{"hops": ["10.0.0.5"], "reply": {"code": 404}}`, "both"},
		{"2xx reply code", http.StatusOK, `{"reply": {"code": 200, "reason": "OK"}}`, "reply code 200 is not between 300 and 699"},
		{"reason injection", http.StatusOK, `{"reply": {"code": 404, "reason": "Not Found\r\nX-Evil: 1"}}`, "control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, tc.status, tc.body)
			c, _ := start(t, Config{URL: srv.URL + "/r?u={user}"})
			r := lookup(t, c, Request{User: "bob"})
			if r.Outcome != OutcomeError || r.Hops != nil || r.Reply == nil || *r.Reply != (Reply{500, "Route Lookup Failed"}) {
				t.Fatalf("got outcome %q reply %+v hops %v err %v, want error 500", r.Outcome, r.Reply, r.Hops, r.Err)
			}
			if r.Err == nil || !strings.Contains(r.Err.Error(), tc.errHas) {
				t.Errorf("Err = %v, want it to contain %q", r.Err, tc.errHas)
			}
			if r.Err != nil && !strings.Contains(r.Err.Error(), "lookup test: GET "+srv.URL+"/r?u=bob") {
				t.Errorf("Err = %v, want it to name the client and URL", r.Err)
			}
			if st := c.Stats(); st.Errors != 1 || st.Requests != 1 {
				t.Errorf("stats = %+v, want 1 request, 1 error", st)
			}
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ := start(t, Config{URL: "http://" + addr + "/", OnError: Reply{Code: 503, Reason: "Lookup Down"}})
	r := lookup(t, c, Request{})
	if r.Outcome != OutcomeError || r.Reply == nil || *r.Reply != (Reply{503, "Lookup Down"}) || r.Err == nil {
		t.Fatalf("got outcome %q reply %+v err %v, want error with the configured reply", r.Outcome, r.Reply, r.Err)
	}
}

// TestOverflowAndShutdown: with one pool goroutine and a queue of one, the
// third concurrent lookup is refused; cancelling Run completes both the
// in-flight and the queued lookup with OnError, each exactly once.
func TestOverflowAndShutdown(t *testing.T) {
	arrived := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		io.WriteString(w, `{"hops": ["10.0.0.5"]}`)
	}))
	t.Cleanup(srv.Close)
	c, stop := start(t, Config{URL: srv.URL, Concurrency: 1, QueueSize: 1, Timeout: 5 * time.Second})

	var calls [3]atomic.Int32
	results := make(chan Result, 10)
	done := func(i int) func(Result) {
		return func(r Result) {
			calls[i].Add(1)
			results <- r
		}
	}
	if !c.Lookup(Request{CallID: "1"}, done(0)) {
		t.Fatal("first Lookup refused")
	}
	select {
	case <-arrived: // the pool goroutine holds lookup 1; the queue is empty
	case <-time.After(time.Second):
		t.Fatal("first request did not reach the server")
	}
	if !c.Lookup(Request{CallID: "2"}, done(1)) {
		t.Fatal("second Lookup refused; it should wait in the queue")
	}
	if c.Lookup(Request{CallID: "3"}, done(2)) {
		t.Fatal("third Lookup accepted; the queue of 1 is full")
	}
	st := c.Stats()
	if st.Requests != 2 || st.Overflows != 1 || st.InFlight != 1 || st.Queued != 1 {
		t.Errorf("stats before shutdown = %+v", st)
	}
	if o := c.OverflowResult(); o.Outcome != OutcomeOverflow || o.Reply == nil || *o.Reply != (Reply{500, "Route Lookup Failed"}) || o.Err == nil {
		t.Errorf("OverflowResult = %+v", o)
	}

	stop()
	for range 2 {
		select {
		case r := <-results:
			if r.Outcome != OutcomeError || r.Reply == nil || r.Reply.Code != 500 || r.Err == nil {
				t.Errorf("after shutdown: outcome %q reply %+v err %v, want error 500", r.Outcome, r.Reply, r.Err)
			}
			t.Logf("shutdown result: %v", r.Err)
		case <-time.After(time.Second):
			t.Fatal("a lookup was not completed at shutdown")
		}
	}
	if c.Lookup(Request{}, done(2)) {
		t.Error("Lookup accepted after Run returned")
	}
	time.Sleep(20 * time.Millisecond)
	for i, want := range []int32{1, 1, 0} {
		if n := calls[i].Load(); n != want {
			t.Errorf("lookup %d: done called %d times, want %d", i+1, n, want)
		}
	}
	st = c.Stats()
	if st.Requests != 2 || st.Errors != 2 || st.Overflows != 2 || st.InFlight != 0 || st.Queued != 0 {
		t.Errorf("stats after shutdown = %+v", st)
	}
}

// TestStopDrainsQueue: lookups still queued when Run stops are completed
// with OnError and never sent.
func TestStopDrainsQueue(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, `{"hops": ["10.0.0.5"]}`)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{Name: "drain", URL: srv.URL, Concurrency: 2}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var calls [5]atomic.Int32
	for i := range calls {
		if !c.Lookup(Request{}, func(r Result) {
			calls[i].Add(1)
			if r.Outcome != OutcomeError || r.Reply == nil || r.Reply.Code != 500 || r.Err == nil || !strings.Contains(r.Err.Error(), "stopped before the request was sent") {
				t.Errorf("lookup %d: outcome %q reply %+v err %v", i, r.Outcome, r.Reply, r.Err)
			}
		}) {
			t.Fatalf("Lookup %d refused", i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Run(ctx) // returns once every queued lookup is completed
	for i := range calls {
		if n := calls[i].Load(); n != 1 {
			t.Errorf("lookup %d: done called %d times, want 1", i, n)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests sent after shutdown, want 0", n)
	}
	if st := c.Stats(); st.Requests != 5 || st.Errors != 5 || st.Queued != 0 || st.InFlight != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// TestMaxWait: a lookup that waited longer than MaxWait behind a slow one
// times out without a request.
func TestMaxWait(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(150 * time.Millisecond)
		io.WriteString(w, `{"hops": ["10.0.0.5"]}`)
	}))
	t.Cleanup(srv.Close)
	c, _ := start(t, Config{URL: srv.URL, Concurrency: 1, MaxWait: 50 * time.Millisecond})

	results := make(chan Result, 2)
	for range 2 {
		if !c.Lookup(Request{}, func(r Result) { results <- r }) {
			t.Fatal("Lookup refused")
		}
	}
	outcomes := map[string]int{}
	for range 2 {
		select {
		case r := <-results:
			outcomes[r.Outcome]++
			if r.Outcome == OutcomeTimeout && (r.Wait < 50*time.Millisecond || !strings.Contains(r.Err.Error(), "max wait")) {
				t.Errorf("timed-out lookup: Wait %v, Err %v", r.Wait, r.Err)
			}
		case <-time.After(time.Second):
			t.Fatal("lookup not completed")
		}
	}
	if outcomes[OutcomeOK] != 1 || outcomes[OutcomeTimeout] != 1 || hits.Load() != 1 {
		t.Errorf("outcomes %v, %d requests; want 1 ok, 1 timeout, 1 request", outcomes, hits.Load())
	}
}

// TestLookupBeforeRun: lookups queued before Run are served once it runs.
func TestLookupBeforeRun(t *testing.T) {
	srv := serve(t, http.StatusOK, `{"hops": ["10.0.0.5"]}`)
	c, err := New(Config{Name: "early", URL: srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Result, 1)
	if !c.Lookup(Request{}, func(r Result) { got <- r }) {
		t.Fatal("Lookup before Run refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { c.Run(ctx); close(ran) }()
	defer func() { cancel(); <-ran }()
	select {
	case r := <-got:
		if r.Outcome != OutcomeOK {
			t.Errorf("outcome %q err %v", r.Outcome, r.Err)
		}
	case <-time.After(time.Second):
		t.Fatal("queued lookup not served")
	}
	c.Run(ctx) // a second Run returns at once
}

// TestConnectionReuse: sequential lookups share one keep-alive connection.
func TestConnectionReuse(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"hops": ["10.0.0.5"]}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, _ := start(t, Config{URL: srv.URL + "/?c={callid}", Concurrency: 4})

	for i := range 50 {
		if r := lookup(t, c, Request{CallID: fmt.Sprint(i)}); r.Outcome != OutcomeOK {
			t.Fatalf("lookup %d: outcome %q err %v", i, r.Outcome, r.Err)
		}
	}
	if n := conns.Load(); n > 2 {
		t.Errorf("50 sequential lookups used %d TCP connections, want <= 2", n)
	}
}

func TestNewValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		errHas string
	}{
		{"no name", Config{URL: "http://127.0.0.1/"}, "name is required"},
		{"empty url", Config{Name: "n"}, "scheme must be http or https"},
		{"ftp", Config{Name: "n", URL: "ftp://127.0.0.1/{user}"}, "scheme must be http or https"},
		{"relative", Config{Name: "n", URL: "/route?u={user}"}, "scheme must be http or https"},
		{"no host", Config{Name: "n", URL: "http:///route"}, "missing host"},
		{"user info", Config{Name: "n", URL: "http://u:p@127.0.0.1/"}, "user info"},
		{"unknown placeholder", Config{Name: "n", URL: "http://127.0.0.1/?u={usr}"}, "unknown placeholder {usr}"},
		{"unterminated", Config{Name: "n", URL: "http://127.0.0.1/?u={user"}, "unterminated placeholder"},
		{"stray brace", Config{Name: "n", URL: "http://127.0.0.1/?u={user}}"}, "unmatched '}'"},
		{"negative timeout", Config{Name: "n", URL: "http://127.0.0.1/", Timeout: -1}, "timeout must not be negative"},
		{"negative concurrency", Config{Name: "n", URL: "http://127.0.0.1/", Concurrency: -1}, "concurrency"},
		{"negative queue", Config{Name: "n", URL: "http://127.0.0.1/", QueueSize: -1}, "queue size"},
		{"bad on_error", Config{Name: "n", URL: "http://127.0.0.1/", OnError: Reply{Code: 200}}, "on_error: code must be between 300 and 699"},
		{"bad on_timeout reason", Config{Name: "n", URL: "http://127.0.0.1/", OnTimeout: Reply{Code: 504, Reason: "a\nb"}}, "on_timeout"},
	} {
		_, err := New(tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: New error = %v, want it to contain %q", tc.name, err, tc.errHas)
		}
	}

	c, err := New(Config{Name: "ok", URL: "https://[::1]:8443/r/{host}?u={user}"}, nil)
	if err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if c.Name() != "ok" || c.conc != DefaultConcurrency || cap(c.queue) != DefaultQueueSize || c.timeout != DefaultTimeout ||
		c.transport.MaxIdleConnsPerHost != DefaultConcurrency || c.transport.Proxy != nil {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestLatencyBuckets(t *testing.T) {
	var s counters
	s.record(OutcomeOK, 500*time.Microsecond)
	s.record(OutcomeOK, time.Millisecond)
	s.record(OutcomeOK, 3*time.Millisecond)
	s.record(OutcomeOK, time.Hour)
	b := LatencyBounds()
	if len(b) != NumLatencyBuckets-1 {
		t.Fatalf("%d bounds for %d buckets", len(b), NumLatencyBuckets)
	}
	b[0] = 0 // a copy: must not change the histogram
	if got := [4]uint64{s.latency[0].Load(), s.latency[1].Load(), s.latency[2].Load(), s.latency[NumLatencyBuckets-1].Load()}; got != [4]uint64{2, 0, 1, 1} {
		t.Errorf("buckets = %v", got)
	}
	if LatencyBounds()[0] != time.Millisecond {
		t.Error("LatencyBounds exposes the package table")
	}
}
