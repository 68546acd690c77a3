package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func dialTCP(t *testing.T, to netip.AddrPort) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(to))
	if err != nil {
		t.Fatalf("dial tcp %s: %v", to, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func tcpCfg(a netip.AddrPort) Config { return Config{Listen: []Listen{{Addr: a, TCP: true}}} }

// readExactly reads len(want) bytes and compares.
func readExactly(t *testing.T, c net.Conn, want []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// expectClosed waits for the peer to close c.
func expectClosed(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
			return
		}
		t.Fatalf("connection not closed: %v", err)
	}
}

func TestTCPTwoMessagesInOneWrite(t *testing.T) {
	rec := newRecorder()
	tr := start(t, tcpCfg(loop4), rec)
	local := addr(t, tr, TCP)
	cl := dialTCP(t, local)
	m1, m2 := sipMsg("a", 1, "body-one"), sipMsg("a", 2, "")
	if _, err := cl.Write(append(append([]byte{}, m1...), m2...)); err != nil {
		t.Fatal(err)
	}
	in1, in2 := rec.next(t), rec.next(t)
	if cseqOf(t, in1) != 1 || cseqOf(t, in2) != 2 || string(in1.Msg.Body()) != "body-one" {
		t.Fatal("wrong messages or order")
	}
	remote := unmap(cl.LocalAddr().(*net.TCPAddr).AddrPort())
	if in1.Proto != TCP || in1.ConnID == 0 || in1.ConnID != in2.ConnID || in1.Local != local ||
		in1.Remote != remote || in1.Size != len(m1) || in2.Size != len(m2) || in1.Socket != 0 {
		t.Fatalf("metadata %+v", in1)
	}
	if in1.Msg.Transport() != "TCP" || in1.Msg.Source() != remote.String() {
		t.Fatalf("transport/source %q %q", in1.Msg.Transport(), in1.Msg.Source())
	}
	if c := tr.Counters(); c.TCPAccepted != 1 || c.TCPOpen != 1 || c.TCP.Received != 2 {
		t.Fatalf("counters %+v", c)
	}
}

func TestTCPByteByByte(t *testing.T) {
	rec := newRecorder()
	tr := start(t, tcpCfg(loop4), rec)
	cl := dialTCP(t, addr(t, tr, TCP))
	stream := append(sipMsg("b", 1, "x\r\ny"), "\r\n"...) // trailing lone CRLF: ignored
	stream = append(stream, sipMsg("b", 2, "")...)
	for i := range stream {
		if _, err := cl.Write(stream[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	in1, in2 := rec.next(t), rec.next(t)
	if cseqOf(t, in1) != 1 || string(in1.Msg.Body()) != "x\r\ny" || cseqOf(t, in2) != 2 {
		t.Fatal("wrong messages")
	}
	// No pong for a lone CRLF.
	_ = cl.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := cl.Read(make([]byte, 8)); n != 0 || !errors.Is(err, timeoutErr(err)) {
		t.Fatalf("unexpected read %d %v", n, err)
	}
	rec.none(t, 20*time.Millisecond)
}

// timeoutErr returns err if it is a timeout, so errors.Is matches only then.
func timeoutErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return errors.New("not a timeout")
}

func TestTCPKeepalivePong(t *testing.T) {
	rec := newRecorder()
	tr := start(t, tcpCfg(loop4), rec)
	cl := dialTCP(t, addr(t, tr, TCP))
	if _, err := cl.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	readExactly(t, cl, []byte("\r\n"))
	// Split ping, then a ping glued before a message.
	for _, s := range []string{"\r\n\r", "\n"} {
		if _, err := cl.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	readExactly(t, cl, []byte("\r\n"))
	if _, err := cl.Write(append([]byte("\r\n\r\n"), sipMsg("k", 1, "")...)); err != nil {
		t.Fatal(err)
	}
	readExactly(t, cl, []byte("\r\n"))
	if in := rec.next(t); cseqOf(t, in) != 1 {
		t.Fatal("wrong message")
	}
	if got := tr.Counters().TCPKeepalivePongs; got != 3 {
		t.Fatalf("pongs %d", got)
	}
	if c := tr.Counters(); c.TCP.Sent != 0 {
		t.Fatalf("pongs must not count as SIP messages sent: %+v", c.TCP)
	}
}

func TestTCPConnectionReuse(t *testing.T) {
	for _, a := range []netip.AddrPort{loop4, loop6} {
		t.Run(a.Addr().String(), func(t *testing.T) {
			rec := newRecorder()
			tr := start(t, tcpCfg(a), rec)
			local := addr(t, tr, TCP)
			cl := dialTCP(t, local)
			if _, err := cl.Write(sipMsg("r", 1, "")); err != nil {
				t.Fatal(err)
			}
			in := rec.next(t)
			// Response on the request's connection.
			resp := sipMsg("r", 1, "resp")
			if err := tr.Send(Outbound{Proto: TCP, From: local, To: in.Remote, ConnID: in.ConnID, Data: resp}); err != nil {
				t.Fatal(err)
			}
			readExactly(t, cl, resp)
			// No ConnID: the open inbound connection to the same remote is reused.
			req := sipMsg("r", 2, "")
			if err := tr.Send(Outbound{Proto: TCP, From: local, To: in.Remote, Data: req}); err != nil {
				t.Fatal(err)
			}
			readExactly(t, cl, req)
			// A stale ConnID falls back to the remote's connection.
			req3 := sipMsg("r", 3, "")
			if err := tr.Send(Outbound{Proto: TCP, From: local, To: in.Remote, ConnID: 999999, Data: req3}); err != nil {
				t.Fatal(err)
			}
			readExactly(t, cl, req3)
			// Sent is counted after writev returns, which can trail the peer's read.
			waitFor(t, func() bool { return tr.Counters().TCP.Sent == 3 })
			if c := tr.Counters(); c.TCPDialed != 0 || c.TCPAccepted != 1 {
				t.Fatalf("counters %+v", c)
			}
		})
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	rec := newRecorder()
	tr := start(t, Config{Listen: []Listen{{Addr: loop4, TCP: true}}, TCPIdleTimeout: 300 * time.Millisecond}, rec)
	local := addr(t, tr, TCP)
	cl := dialTCP(t, local)
	// Activity in both directions keeps it open past the timeout.
	var lastAct time.Time
	for i := 1; i <= 4; i++ {
		if _, err := cl.Write(sipMsg("i", i, "")); err != nil {
			t.Fatal(err)
		}
		in := rec.next(t)
		time.Sleep(100 * time.Millisecond)
		resp := sipMsg("i", i, "")
		if err := tr.Send(Outbound{Proto: TCP, ConnID: in.ConnID, To: in.Remote, Data: resp}); err != nil {
			t.Fatal(err)
		}
		readExactly(t, cl, resp)
		lastAct = time.Now()
		time.Sleep(100 * time.Millisecond)
	}
	if c := tr.Counters(); c.TCPIdleClosed != 0 || c.TCPOpen != 1 {
		t.Fatalf("closed while active: %+v", c)
	}
	expectClosed(t, cl, 3*time.Second)
	if el := time.Since(lastAct); el < 250*time.Millisecond {
		t.Fatalf("closed too early (%s)", el)
	}
	waitFor(t, func() bool { c := tr.Counters(); return c.TCPIdleClosed == 1 && c.TCPOpen == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func closedPort(t *testing.T, a netip.AddrPort) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).AddrPort()
	_ = ln.Close()
	return p
}

func TestTCPDialFailureCallsOnError(t *testing.T) {
	rec := newRecorder()
	tr := start(t, tcpCfg(loop4), rec)
	dead := closedPort(t, loop4)
	errs := make(chan error, 4)
	onErr := func(err error) { errs <- err }
	for i := range 2 {
		if err := tr.Send(Outbound{Proto: TCP, From: addr(t, tr, TCP), To: dead, Data: sipMsg("d", i, ""), OnError: onErr}); err != nil {
			t.Fatalf("Send returned %v; dial errors must be asynchronous", err)
		}
	}
	for range 2 {
		select {
		case err := <-errs:
			if !strings.Contains(err.Error(), "refused") {
				t.Fatalf("error %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("OnError not called")
		}
	}
	waitFor(t, func() bool { c := tr.Counters(); return c.TCPOpen == 0 })
	// A refused loopback dial can fail before the second Send, so that one
	// may dial again; sharing one dial is covered by TestTCPOrder.
	if c := tr.Counters(); c.TCPDialFailures < 1 || c.TCPDialFailures > 2 || c.TCP.SendErrors != 2 || c.TCPDialed != 0 {
		t.Fatalf("counters %+v", c)
	}
}

func TestTCPTooLarge(t *testing.T) {
	rec := newRecorder()
	tr := start(t, Config{Listen: []Listen{{Addr: loop4, TCP: true}}, MaxMessageSize: 600}, rec)
	local := addr(t, tr, TCP)
	t.Run("declared body", func(t *testing.T) {
		cl := dialTCP(t, local)
		if _, err := cl.Write(sipMsg("big", 1, strings.Repeat("z", 1000))); err != nil {
			t.Fatal(err)
		}
		if b := rec.nextBad(t); b.reason != ReasonTooLarge || b.proto != TCP {
			t.Fatalf("%s %v", b.reason, b.err)
		}
		expectClosed(t, cl, 3*time.Second)
	})
	t.Run("endless headers", func(t *testing.T) {
		cl := dialTCP(t, local)
		if _, err := cl.Write([]byte("OPTIONS sip:a@b SIP/2.0\r\n")); err != nil {
			t.Fatal(err)
		}
		for range 40 {
			if _, err := cl.Write([]byte("X-Pad: 0123456789012345678901234567890123456789\r\n")); err != nil {
				break
			}
		}
		if b := rec.nextBad(t); b.reason != ReasonTooLarge {
			t.Fatalf("%s %v", b.reason, b.err)
		}
		expectClosed(t, cl, 3*time.Second)
	})
	if got := tr.Counters().TCP.Bad[ReasonTooLarge]; got != 2 {
		t.Fatalf("too_large counter %d", got)
	}
}

func TestTCPFramingAndTruncation(t *testing.T) {
	rec := newRecorder()
	tr := start(t, tcpCfg(loop4), rec)
	local := addr(t, tr, TCP)
	cl := dialTCP(t, local)
	noCL := strings.Replace(string(sipMsg("f", 1, "")), "Content-Length: 0\r\n", "", 1)
	if _, err := cl.Write([]byte(noCL)); err != nil {
		t.Fatal(err)
	}
	if b := rec.nextBad(t); b.reason != ReasonFraming {
		t.Fatalf("%s %v", b.reason, b.err)
	}
	expectClosed(t, cl, 3*time.Second)

	cl2 := dialTCP(t, local)
	if _, err := cl2.Write([]byte("NOT SIP AT ALL\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if b := rec.nextBad(t); b.reason != ReasonParse {
		t.Fatalf("%s %v", b.reason, b.err)
	}

	cl3 := dialTCP(t, local)
	half := sipMsg("f", 3, "abcdef")
	if _, err := cl3.Write(half[:len(half)-3]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	_ = cl3.Close()
	if b := rec.nextBad(t); b.reason != ReasonTruncated {
		t.Fatalf("%s %v", b.reason, b.err)
	}
}

// TestTCPOrder sends 1000 messages through Send (one dial, one writer) and
// answers each on the inbound connection; both directions must keep order.
func TestTCPOrder(t *testing.T) {
	for _, a := range []netip.AddrPort{loop4, loop6} {
		t.Run(a.Addr().String(), func(t *testing.T) {
			const n = 1000
			ra, rb := newRecorder(), newRecorder()
			ta := start(t, tcpCfg(a), ra)
			tb := start(t, tcpCfg(a), rb)
			aa, ba := addr(t, ta, TCP), addr(t, tb, TCP)
			for i := 1; i <= n; i++ {
				if err := ta.Send(Outbound{Proto: TCP, From: aa, To: ba, Data: sipMsg("o", i, "payload"),
					OnError: func(err error) { t.Errorf("OnError: %v", err) }}); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			var conn uint64
			for i := 1; i <= n; i++ {
				in := rb.next(t)
				if got := cseqOf(t, in); got != i {
					t.Fatalf("b got cseq %d, want %d", got, i)
				}
				if in.Remote.Addr() != aa.Addr() {
					t.Fatalf("dial did not bind From's IP: remote %s", in.Remote)
				}
				conn = in.ConnID
				if err := tb.Send(Outbound{Proto: TCP, From: ba, To: in.Remote, ConnID: in.ConnID, Data: sipMsg("o", i, "")}); err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
			}
			var aConn uint64
			for i := 1; i <= n; i++ {
				in := ra.next(t)
				if got := cseqOf(t, in); got != i {
					t.Fatalf("a got cseq %d, want %d", got, i)
				}
				if aConn == 0 {
					aConn = in.ConnID
				} else if in.ConnID != aConn {
					t.Fatal("replies arrived on different connections")
				}
			}
			ca, cb := ta.Counters(), tb.Counters()
			if ca.TCPDialed != 1 || cb.TCPAccepted != 1 || cb.TCPDialed != 0 || ca.TCP.Sent != n || cb.TCP.Received != n || conn == 0 {
				t.Fatalf("expected one connection: a %+v b %+v", ca, cb)
			}
		})
	}
}

// TestTCPQueueFullAndWriteTimeout stalls a peer that never reads: Send must
// keep returning immediately, eventually fail with a full queue, and the
// write timeout must fail the stuck messages via OnError.
func TestTCPQueueFullAndWriteTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var peer net.Conn
	accepted := make(chan struct{})
	go func() {
		peer, _ = ln.Accept() // never reads
		close(accepted)
	}()
	tr := start(t, Config{Listen: []Listen{{Addr: loop4, TCP: true}}, TCPQueueLen: 4, TCPWriteTimeout: 300 * time.Millisecond}, newRecorder())
	to := ln.Addr().(*net.TCPAddr).AddrPort()
	var mu sync.Mutex
	var asyncErrs int
	onErr := func(error) { mu.Lock(); asyncErrs++; mu.Unlock() }
	big := bytes.Repeat([]byte("q"), 1<<20)
	var full bool
	for i := 0; i < 200 && !full; i++ {
		t0 := time.Now()
		err := tr.Send(Outbound{Proto: TCP, To: to, Data: big, OnError: onErr})
		if d := time.Since(t0); d > 100*time.Millisecond {
			t.Fatalf("Send blocked for %s", d)
		}
		if err != nil {
			if !errors.Is(err, errQueueFull) {
				t.Fatalf("err %v", err)
			}
			full = true
		}
	}
	if !full {
		t.Fatal("queue never filled")
	}
	<-accepted
	defer peer.Close()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return asyncErrs > 0 && tr.Counters().TCPOpen == 0 })
}

func TestTCPSharedPortWithUDP(t *testing.T) {
	tr := start(t, Config{Listen: []Listen{{Addr: loop4, UDP: true, TCP: true}}}, newRecorder())
	ls := tr.LocalAddrs()
	if len(ls) != 1 || !ls[0].UDP || !ls[0].TCP || ls[0].Addr.Port() == 0 {
		t.Fatalf("LocalAddrs %+v: UDP and TCP should share the port", ls)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	rec := newRecorder()
	tr, err := New(Config{Listen: []Listen{{Addr: loop4, UDP: true, TCP: true}}, UDPSockets: 3}, rec)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- tr.Serve(t.Context()) }()
	local := addr(t, tr, TCP)
	cl := dialTCP(t, local)
	if _, err := cl.Write(sipMsg("c", 1, "")); err != nil {
		t.Fatal(err)
	}
	rec.next(t)
	// An outbound connection with a pending dial-less send to a dead port.
	errs := make(chan error, 1)
	_ = tr.Send(Outbound{Proto: TCP, To: closedPort(t, loop4), Data: []byte("x"), OnError: func(e error) { errs <- e }})
	tr.Close()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	expectClosed(t, cl, 3*time.Second)
	if err := tr.Send(Outbound{Proto: TCP, To: local, Data: []byte("x")}); err == nil {
		t.Fatal("Send after Close succeeded")
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before+1 })
}

func TestProto(t *testing.T) {
	for s, want := range map[string]Proto{"udp": UDP, "UDP": UDP, "Tcp": TCP} {
		if p, err := ParseProto(s); err != nil || p != want || !strings.EqualFold(p.String(), s) {
			t.Fatalf("ParseProto(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseProto("tls"); err == nil {
		t.Fatal("tls accepted")
	}
	if err := (&Transport{}).Send(Outbound{}); err == nil {
		t.Fatal("zero Proto accepted")
	}
}
