package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// goUAC is a minimal UDP UAC for the suspend tests that need what SIPp
// cannot give: many INVITEs at exactly the same moment (queue capacity),
// and per-response arrival times on the test's own clock (expiry, SIGTERM),
// with the reason phrase and headers of each response at hand.
//
// It sends INVITEs without retransmitting them (loopback, and the proxy's
// 100 Trying arrives at once), records every response per Call-ID, and
// ACKs every non-2xx final response with the INVITE's branch, as a UAC
// must (RFC 3261 §17.1.1.3), so the proxy's server transaction completes.
type goUAC struct {
	t     *testing.T
	conn  *net.UDPConn
	proxy *net.UDPAddr
	local string // host:port of conn, for Via/From/Contact

	mu    sync.Mutex
	calls map[string]*goCall // by Call-ID
	cond  *sync.Cond
}

type goCall struct {
	branch, fromTag string
	sent            time.Time
	resps           []sipResp
}

// sipResp is one received response.
type sipResp struct {
	at         time.Time
	code       int
	reason     string
	cseq       string // "1 INVITE"
	to         string // the To header value (with the tag)
	retryAfter string // "" when absent
	raw        string
}

func (r sipResp) String() string { return fmt.Sprintf("%d %s", r.code, r.reason) }

func newGoUAC(t *testing.T, proxyAddr string) *goUAC {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	c := &goUAC{t: t, conn: conn, proxy: raddr, local: conn.LocalAddr().String(), calls: map[string]*goCall{}}
	c.cond = sync.NewCond(&c.mu)
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			c.handle(string(buf[:n]), time.Now())
		}
	}()
	return c
}

// invite sends one INVITE with the given Call-ID and returns when it was
// sent.
func (c *goUAC) invite(callID string) time.Time {
	c.t.Helper()
	call := &goCall{branch: "z9hG4bK-go-" + callID, fromTag: "go-" + callID}
	msg := fmt.Sprintf("INVITE sip:service@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=%s\r\n"+
		"From: <sip:go@%s>;tag=%s\r\n"+
		"To: <sip:service@%s>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 INVITE\r\n"+
		"Contact: <sip:go@%s>\r\n"+
		"Max-Forwards: 70\r\n"+
		"Content-Length: 0\r\n\r\n",
		c.proxy, c.local, call.branch, c.local, call.fromTag, c.proxy, callID, c.local)
	c.mu.Lock()
	c.calls[callID] = call
	c.mu.Unlock()
	now := time.Now()
	if _, err := c.conn.WriteToUDP([]byte(msg), c.proxy); err != nil {
		c.t.Fatalf("send INVITE %s: %v", callID, err)
	}
	c.mu.Lock()
	call.sent = now
	c.mu.Unlock()
	return now
}

func (c *goUAC) handle(msg string, at time.Time) {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	if !strings.HasPrefix(lines[0], "SIP/2.0 ") {
		return // we are a UAC: requests are not expected
	}
	status := strings.SplitN(lines[0], " ", 3)
	code, _ := strconv.Atoi(status[1])
	r := sipResp{at: at, code: code, raw: msg}
	if len(status) == 3 {
		r.reason = status[2]
	}
	var callID string
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "call-id", "i":
			callID = value
		case "cseq":
			r.cseq = value
		case "to", "t":
			r.to = value
		case "retry-after":
			r.retryAfter = value
		}
	}
	c.mu.Lock()
	call := c.calls[callID]
	if call != nil {
		call.resps = append(call.resps, r)
		c.cond.Broadcast()
	}
	c.mu.Unlock()
	if call != nil && code >= 300 && strings.HasSuffix(r.cseq, "INVITE") {
		c.ack(callID, call, r)
	}
}

// ack sends the ACK for a non-2xx final response: same branch as the
// INVITE, To with the response's tag (RFC 3261 §17.1.1.3).
func (c *goUAC) ack(callID string, call *goCall, r sipResp) {
	msg := fmt.Sprintf("ACK sip:service@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=%s\r\n"+
		"From: <sip:go@%s>;tag=%s\r\n"+
		"To: %s\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 ACK\r\n"+
		"Max-Forwards: 70\r\n"+
		"Content-Length: 0\r\n\r\n",
		c.proxy, c.local, call.branch, c.local, call.fromTag, r.to, callID)
	_, _ = c.conn.WriteToUDP([]byte(msg), c.proxy)
}

// final waits up to d for the first final (>= 200) response of callID and
// returns it with every response received so far; ok is false on timeout.
func (c *goUAC) final(callID string, d time.Duration) (final sipResp, all []sipResp, ok bool) {
	deadline := time.Now().Add(d)
	// sync.Cond has no timed wait: a timer wakes the waiter at the deadline.
	timer := time.AfterFunc(d, func() { c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() })
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		call := c.calls[callID]
		for _, r := range call.resps {
			if r.code >= 200 {
				return r, append([]sipResp(nil), call.resps...), true
			}
		}
		if !time.Now().Before(deadline) {
			return sipResp{}, append([]sipResp(nil), call.resps...), false
		}
		c.cond.Wait()
	}
}

// responses returns a copy of what callID received so far.
func (c *goUAC) responses(callID string) []sipResp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sipResp(nil), c.calls[callID].resps...)
}

// sentAt is when the INVITE of callID left.
func (c *goUAC) sentAt(callID string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[callID].sent
}

// describeResps renders responses with their arrival offsets from the INVITE,
// for failure messages.
func describeResps(sent time.Time, rs []sipResp) string {
	if len(rs) == 0 {
		return "no responses"
	}
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s after %s", r, r.at.Sub(sent).Round(time.Millisecond))
	}
	return b.String()
}
