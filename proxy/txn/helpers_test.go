package txn

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func parseRequest(t *testing.T, raw string) *sip.Request {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(strings.ReplaceAll(raw, "\n", "\r\n")))
	if err != nil {
		t.Fatalf("parse request: %v", err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		t.Fatalf("parsed %T, want *sip.Request", msg)
	}
	return req
}

func newInvite(t *testing.T) *sip.Request {
	t.Helper()
	return parseRequest(t, `INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKproxy1
Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101
Route: <sip:p1.example.com;lr>
Route: <sip:p2.example.com;lr>
Max-Forwards: 69
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 2 INVITE
Contact: <sip:alice@client.atlanta.example.com>
Content-Type: application/sdp
Content-Length: 4

v=0
`)
}

func newOptions(t *testing.T) *sip.Request {
	t.Helper()
	return parseRequest(t, `OPTIONS sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKopt1
Max-Forwards: 70
From: <sip:alice@atlanta.example.com>;tag=1
To: <sip:bob@biloxi.example.com>
Call-ID: opt-1@atlanta.example.com
CSeq: 7 OPTIONS
Content-Length: 0

`)
}

// responseTo builds a response with a fixed To tag so tests can check that
// AckFor takes To from the response.
func responseTo(req *sip.Request, code int) *sip.Response {
	res := sip.NewResponse(code, "")
	for _, name := range []string{"Via", "From", "Call-ID", "CSeq"} {
		for _, h := range req.GetHeaders(name) {
			res.AppendHeader(sip.HeaderClone(h))
		}
	}
	if to := req.To(); to != nil {
		to := sip.HeaderClone(to).(*sip.ToHeader)
		if code > 100 {
			to.Params = to.Params.Add("tag", "resp-tag")
		}
		res.AppendHeader(to)
	}
	return res
}

type eventKind int

const (
	evResponse       eventKind = iota // a response arrives (client) / the TU responds (server)
	evRetransmission                  // server: a retransmission of the request arrives
	evAck                             // server: an ACK arrives
	evTransportError
)

type event struct {
	at   time.Duration
	kind eventKind
	code int
}

func rx(at time.Duration, code int) event   { return event{at: at, kind: evResponse, code: code} }
func tx(at time.Duration, code int) event   { return event{at: at, kind: evResponse, code: code} }
func retrans(at time.Duration) event        { return event{at: at, kind: evRetransmission} }
func ack(at time.Duration) event            { return event{at: at, kind: evAck} }
func transportError(at time.Duration) event { return event{at: at, kind: evTransportError} }

func sec(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// horizon bounds every simulated run; nothing in these tables lasts longer.
const horizon = 10 * time.Minute

// machine abstracts Server and Client for the trace driver.
type machine interface {
	Deadline() time.Time
	fire(now time.Time) string
	handle(e event, now time.Time) string
	state() State
}

// runTrace plays the events on a fake clock, calling OnTimer exactly at
// each Deadline() in between, and returns one line per event and per timer
// wake-up, as "offset what".
func runTrace(t *testing.T, m machine, events []event) []string {
	t.Helper()
	var trace []string
	now := t0
	for i := 0; ; {
		deadline := m.Deadline()
		if m.state() == Terminated && !deadline.IsZero() {
			t.Fatalf("terminated transaction still has deadline %v", deadline.Sub(t0))
		}
		nextEvent := time.Time{}
		if i < len(events) {
			nextEvent = t0.Add(events[i].at)
		}
		switch {
		case !deadline.IsZero() && (nextEvent.IsZero() || !deadline.After(nextEvent)):
			if deadline.Before(now) {
				t.Fatalf("deadline %v is in the past (now %v)", deadline.Sub(t0), now.Sub(t0))
			}
			now = deadline
			if now.Sub(t0) > horizon {
				t.Fatalf("ran past horizon; trace so far: %q", trace)
			}
			line := m.fire(now)
			if line == "" {
				t.Fatalf("OnTimer at Deadline() %v fired nothing", now.Sub(t0))
			}
			trace = append(trace, fmt.Sprintf("%v %s", now.Sub(t0), line))
		case !nextEvent.IsZero():
			now = nextEvent
			trace = append(trace, fmt.Sprintf("%v %s", now.Sub(t0), m.handle(events[i], now)))
			i++
		default:
			trace = append(trace, "end "+m.state().String())
			return trace
		}
	}
}

type clientMachine struct{ c *Client }

func (m clientMachine) Deadline() time.Time { return m.c.Deadline() }
func (m clientMachine) state() State        { return m.c.State() }

func (m clientMachine) fire(now time.Time) string {
	r := m.c.OnTimer(now)
	if len(r.Fired) == 0 {
		return ""
	}
	line := joinTimers(r.Fired)
	if r.Retransmit {
		line += " retransmit"
	}
	if r.Timeout {
		line += " timeout"
	}
	if r.Terminated {
		line += " terminated"
	}
	return line
}

func (m clientMachine) handle(e event, now time.Time) string {
	switch e.kind {
	case evResponse:
		deliver, sendAck := m.c.OnResponse(responseTo(m.c.Request(), e.code), now)
		return fmt.Sprintf("rx %d deliver=%t ack=%t %s", e.code, deliver, sendAck, m.c.State())
	case evTransportError:
		m.c.OnTransportError(now)
		return "transport-error " + m.c.State().String()
	}
	panic("event not valid for a client")
}

type serverMachine struct{ s *Server }

func (m serverMachine) Deadline() time.Time { return m.s.Deadline() }
func (m serverMachine) state() State        { return m.s.State() }

func (m serverMachine) fire(now time.Time) string {
	r := m.s.OnTimer(now)
	if len(r.Fired) == 0 {
		return ""
	}
	line := joinTimers(r.Fired)
	if r.Resend != nil {
		line += fmt.Sprintf(" resend %d", r.Resend.StatusCode)
	}
	if r.Timeout {
		line += " timeout"
	}
	if r.Terminated {
		line += " terminated"
	}
	return line
}

func (m serverMachine) handle(e event, now time.Time) string {
	switch e.kind {
	case evResponse:
		send := m.s.Respond(responseTo(m.s.Request(), e.code), now)
		return fmt.Sprintf("tx %d send=%t %s", e.code, send, m.s.State())
	case evRetransmission:
		res := m.s.OnRequestRetransmission(now)
		if res == nil {
			return "retrans absorbed " + m.s.State().String()
		}
		return fmt.Sprintf("retrans resend %d %s", res.StatusCode, m.s.State())
	case evAck:
		return fmt.Sprintf("ack absorbed=%t %s", m.s.OnAck(now), m.s.State())
	case evTransportError:
		m.s.OnTransportError(now)
		return "transport-error " + m.s.State().String()
	}
	panic("unknown event")
}

func joinTimers(names []TimerName) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ",")
}

// every returns "offset what" lines at start, start+step, ... up to and
// including last, for long regular retransmission runs.
func every(start, step, last time.Duration, what string) []string {
	var lines []string
	for at := start; at <= last; at += step {
		lines = append(lines, fmt.Sprintf("%v %s", at, what))
	}
	return lines
}

func lines(parts ...any) []string {
	var out []string
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			out = append(out, v)
		case []string:
			out = append(out, v...)
		default:
			panic(fmt.Sprintf("lines: unexpected %T", p))
		}
	}
	return out
}

func diffTrace(t *testing.T, got, want []string) {
	t.Helper()
	n := max(len(got), len(want))
	for i := 0; i < n; i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("trace line %d:\n got  %q\n want %q\nfull trace:\n  %s", i, g, w, strings.Join(got, "\n  "))
			return
		}
	}
}
