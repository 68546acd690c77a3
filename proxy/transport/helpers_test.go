package transport

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

type badEvent struct {
	proto         Proto
	local, remote netip.AddrPort
	reason        string
	err           error
}

// recorder is a non-blocking Handler that records everything.
type recorder struct {
	in  chan Inbound
	bad chan badEvent
}

func newRecorder() *recorder {
	return &recorder{in: make(chan Inbound, 4096), bad: make(chan badEvent, 64)}
}

func (r *recorder) HandleInbound(in Inbound) {
	select {
	case r.in <- in:
	default:
		panic("test recorder full")
	}
}

func (r *recorder) HandleBad(p Proto, local, remote netip.AddrPort, reason string, err error) {
	r.bad <- badEvent{p, local, remote, reason, err}
}

func (r *recorder) next(t *testing.T) Inbound {
	t.Helper()
	select {
	case in := <-r.in:
		return in
	case b := <-r.bad:
		t.Fatalf("unexpected bad message: %s: %v", b.reason, b.err)
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for inbound message")
	}
	return Inbound{}
}

func (r *recorder) nextBad(t *testing.T) badEvent {
	t.Helper()
	select {
	case b := <-r.bad:
		return b
	case in := <-r.in:
		t.Fatalf("expected bad message, got %s", firstLine(in.Msg.String()))
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for bad message")
	}
	return badEvent{}
}

func (r *recorder) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case in := <-r.in:
		t.Fatalf("unexpected message %s", firstLine(in.Msg.String()))
	case b := <-r.bad:
		t.Fatalf("unexpected bad message: %s: %v", b.reason, b.err)
	case <-time.After(d):
	}
}

func firstLine(s string) string {
	if i := strings.Index(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// sipMsg builds an OPTIONS request with a given CSeq and body.
func sipMsg(callID string, cseq int, body string) []byte {
	return []byte(fmt.Sprintf("OPTIONS sip:bob@example.com SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-%d\r\n"+
		"From: <sip:alice@example.com>;tag=a1\r\n"+
		"To: <sip:bob@example.com>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: %d OPTIONS\r\n"+
		"Max-Forwards: 70\r\n"+
		"Content-Length: %d\r\n\r\n%s", cseq, callID, cseq, len(body), body))
}

func cseqOf(t *testing.T, in Inbound) int {
	t.Helper()
	cs := in.Msg.CSeq()
	if cs == nil {
		t.Fatalf("message without CSeq")
	}
	return int(cs.SeqNo)
}

// start creates and serves a transport, shutting it down at test cleanup.
func start(t *testing.T, cfg Config, h Handler) *Transport {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tr, err := New(cfg, h)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return tr
}

// addr returns the bound address of the first listener with the protocol.
func addr(t *testing.T, tr *Transport, p Proto) netip.AddrPort {
	t.Helper()
	for _, l := range tr.LocalAddrs() {
		if (p == UDP && l.UDP) || (p == TCP && l.TCP) {
			return l.Addr
		}
	}
	t.Fatalf("no %s listener", p)
	return netip.AddrPort{}
}

// testWriter sends log output to t.Log, safely after the test ends.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var loop4 = netip.MustParseAddrPort("127.0.0.1:0")
var loop6 = netip.MustParseAddrPort("[::1]:0")
