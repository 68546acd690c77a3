package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// lookupRoutes sends every request through the lookup "router" instead of
// a destination set.
const lookupRoutes = "routes:\n  - name: default\n    lookup: router\n"

// lookupYAML renders the lookup "router" asking base (an http://host:port
// of a test server) with the request's Request-URI, From and method.
func lookupYAML(base string, timeout time.Duration) string {
	return fmt.Sprintf(`lookups:
  router:
    url: "%s/route?ruri={ruri}&from={from}&method={method}"
    timeout: %s
    max_wait: 5s
    on_timeout: {code: 504, reason: "Route Lookup Timeout"}
    on_error: {code: 500, reason: "Route Lookup Failed"}
`, base, timeout)
}

// lookupServer is a real HTTP route lookup endpoint on loopback that
// records the query of every GET and answers with reply.
type lookupServer struct {
	*httptest.Server
	mu      sync.Mutex
	queries []url.Values
}

func newLookupServer(t *testing.T, reply http.HandlerFunc) *lookupServer {
	t.Helper()
	s := &lookupServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.queries = append(s.queries, r.URL.Query())
		s.mu.Unlock()
		if r.URL.Path != "/route" {
			http.NotFound(w, r)
			return
		}
		reply(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *lookupServer) seen() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.queries...)
}

func jsonReply(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}
}

// TestLookupRoute: routes that ask an HTTP endpoint where each request
// goes, while the request is suspended.
//   - hops: the endpoint names the SIPp UAS; basic calls complete through
//     it, and the endpoint saw the INVITE's method, Request-URI and From
//     (in-dialog requests follow their Route set and are not looked up);
//   - timeout: the endpoint takes 1 s, the lookup timeout is 200 ms: the
//     UAC gets on_timeout (504 Route Lookup Timeout) after about 200 ms;
//   - reply: the endpoint answers {"reply": {"code": 404, ...}}: the UAC
//     gets that 404.
func TestLookupRoute(t *testing.T) {
	t.Run("hops", func(t *testing.T) {
		needProxy(t)
		const n = 5
		ports := freePorts(t, "127.0.0.1", 3) // proxy, UAS, UAC
		srv := newLookupServer(t, jsonReply(fmt.Sprintf(`{"hops": [%q]}`, hop("127.0.0.1", ports[1], "udp"))))
		p := startProxy(t, proxyConfig{
			Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
			Routes: lookupRoutes, Extra: lookupYAML(srv.URL, 200*time.Millisecond),
		})
		uas := startSIPp(t, sipp{
			Name: "uas", Scenario: "uas_basic.xml", Local: "127.0.0.1", Port: ports[1],
			Calls: n, Timeout: 15 * time.Second, RRWant: viaProxy,
		})
		uac := runSIPp(t, sipp{
			Name: "uac", Scenario: "uac_basic.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr,
			Calls: n, Rate: 20, Timeout: 10 * time.Second,
		})
		expectAllOK(t, uac, n)
		expectAllOK(t, uas.wait(t, 5*time.Second), n)

		seen := srv.seen()
		wantRURI := fmt.Sprintf("sip:service@%s", p.Addr)
		for i, q := range seen {
			t.Logf("lookup %d: %s", i, q.Encode())
			if q.Get("method") != "INVITE" {
				t.Errorf("lookup %d: method=%q, want INVITE", i, q.Get("method"))
			}
			if !strings.HasPrefix(q.Get("ruri"), wantRURI) {
				t.Errorf("lookup %d: ruri=%q, want the INVITE's Request-URI %s", i, q.Get("ruri"), wantRURI)
			}
			if !strings.Contains(q.Get("from"), "sip:sipp@127.0.0.1") {
				t.Errorf("lookup %d: from=%q, want the INVITE's From (sip:sipp@127.0.0.1:...)", i, q.Get("from"))
			}
		}
		if len(seen) != n {
			t.Errorf("the endpoint got %d lookups, want %d (one per INVITE)", len(seen), n)
		}
	})

	// reject runs one INVITE from the Go UAC against an endpoint and
	// returns the final response and its delay after the INVITE.
	reject := func(t *testing.T, reply http.HandlerFunc) (sipResp, time.Duration, *lookupServer) {
		t.Helper()
		needProxy(t)
		ports := freePorts(t, "127.0.0.1", 1)
		srv := newLookupServer(t, reply)
		p := startProxy(t, proxyConfig{
			Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
			Routes: lookupRoutes, Extra: lookupYAML(srv.URL, 200*time.Millisecond),
		})
		c := newGoUAC(t, p.Addr)
		id := fmt.Sprintf("lookup-%d", ports[0])
		sent := c.invite(id)
		f, all, ok := c.final(id, 3*time.Second)
		t.Logf("%s", describeResps(sent, all))
		if !ok {
			t.Fatalf("no final response: %s", describeResps(sent, all))
		}
		if len(srv.seen()) != 1 {
			t.Errorf("the endpoint got %d lookups, want 1", len(srv.seen()))
		}
		return f, f.at.Sub(sent), srv
	}

	t.Run("timeout", func(t *testing.T) {
		f, d, _ := reject(t, func(w http.ResponseWriter, r *http.Request) {
			// slow, but let the server close as soon as the proxy gives up
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return
			}
			jsonReply(`{"reply": {"code": 480, "reason": "Too Late"}}`)(w, r)
		})
		if f.code != 504 || f.reason != "Route Lookup Timeout" {
			t.Errorf("got %s, want on_timeout 504 Route Lookup Timeout", f)
		}
		if d < 150*time.Millisecond || d > 900*time.Millisecond {
			t.Errorf("504 after %s, want about the lookup timeout 200ms", d.Round(time.Millisecond))
		}
	})

	t.Run("reply", func(t *testing.T) {
		f, _, _ := reject(t, jsonReply(`{"reply": {"code": 404, "reason": "Not Found"}}`))
		if f.code != 404 || f.reason != "Not Found" {
			t.Errorf("got %s, want the endpoint's 404 Not Found", f)
		}
	})
}
