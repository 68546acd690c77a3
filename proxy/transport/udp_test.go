package transport

import (
	"bytes"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"log/slog"
)

func dialUDP(t *testing.T, to netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatalf("dial udp %s: %v", to, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestUDPReceiveAndReply(t *testing.T) {
	for _, a := range []netip.AddrPort{loop4, loop6} {
		t.Run(a.Addr().String(), func(t *testing.T) {
			rec := newRecorder()
			tr := start(t, Config{Listen: []Listen{{Addr: a, UDP: true}}}, rec)
			local := addr(t, tr, UDP)
			if local.Port() == 0 {
				t.Fatal("LocalAddrs did not resolve port 0")
			}
			cl := dialUDP(t, local)
			msg := sipMsg("call-1", 1, "")
			if _, err := cl.Write(msg); err != nil {
				t.Fatal(err)
			}
			in := rec.next(t)
			clientAddr := unmap(cl.LocalAddr().(*net.UDPAddr).AddrPort())
			if in.Proto != UDP || in.Local != local || in.Remote != clientAddr || in.ConnID != 0 ||
				in.Size != len(msg) || in.Socket != 0 {
				t.Fatalf("inbound metadata wrong: %+v (want local %s remote %s size %d)", in, local, clientAddr, len(msg))
			}
			if in.Msg.Transport() != "UDP" || in.Msg.Source() != clientAddr.String() {
				t.Fatalf("message transport/source = %q/%q", in.Msg.Transport(), in.Msg.Source())
			}
			if time.Since(in.Received) > 5*time.Second || in.Received.IsZero() {
				t.Fatalf("bad Received %v", in.Received)
			}

			// Reply: must come from the listening port so Via sent-by holds.
			reply := sipMsg("call-1", 2, "hello")
			if err := tr.Send(Outbound{Proto: UDP, From: local, To: in.Remote, Data: reply}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			buf := make([]byte, 2048)
			_ = cl.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, src, err := cl.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], reply) {
				t.Fatalf("reply mismatch")
			}
			if src.Port() != local.Port() || unmap(src).Addr() != local.Addr() {
				t.Fatalf("reply source %s, want %s", src, local)
			}
			c := tr.Counters()
			if c.UDP.Received != 1 || c.UDP.Sent != 1 || c.UDP.ReceivedBytes != uint64(len(msg)) {
				t.Fatalf("counters %+v", c.UDP)
			}
		})
	}
}

func TestUDPTransportToTransport(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	a := start(t, Config{Listen: []Listen{{Addr: loop4, UDP: true}}}, ra)
	b := start(t, Config{Listen: []Listen{{Addr: loop4, UDP: true}}}, rb)
	aa, ba := addr(t, a, UDP), addr(t, b, UDP)
	if err := a.Send(Outbound{Proto: UDP, From: aa, To: ba, Data: sipMsg("x", 1, "")}); err != nil {
		t.Fatal(err)
	}
	if in := rb.next(t); in.Remote != aa {
		t.Fatalf("b saw remote %s, want a's listen address %s", in.Remote, aa)
	}
	// Zero From: first listener of the right family.
	if err := b.Send(Outbound{Proto: UDP, To: aa, Data: sipMsg("x", 2, "")}); err != nil {
		t.Fatal(err)
	}
	if in := ra.next(t); in.Remote != ba || cseqOf(t, in) != 2 {
		t.Fatalf("a saw %s cseq %d", in.Remote, cseqOf(t, in))
	}
	if err := a.Send(Outbound{Proto: UDP, From: netip.MustParseAddrPort("127.0.0.1:1"), To: ba, Data: []byte("x")}); err == nil {
		t.Fatal("send from a non-listen address should fail")
	}
}

func TestUDPReusePortSockets(t *testing.T) {
	const n = 4
	rec := newRecorder()
	tr := start(t, Config{Listen: []Listen{{Addr: loop4, UDP: true}}, UDPSockets: n}, rec)
	if tr.UDPSockets() != n {
		t.Fatalf("UDPSockets() = %d", tr.UDPSockets())
	}
	local := addr(t, tr, UDP)
	// Many flows: the kernel hashes each 4-tuple to one socket, so with 64
	// source ports every socket is hit with overwhelming probability.
	const flows = 64
	clients := make([]*net.UDPConn, flows)
	for i := range clients {
		clients[i] = dialUDP(t, local)
		if _, err := clients[i].Write(sipMsg("c", i+1, "")); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int]bool{}
	perFlow := map[netip.AddrPort]int{}
	for range flows {
		in := rec.next(t)
		if in.Local != local {
			t.Fatalf("local %s, want %s", in.Local, local)
		}
		seen[in.Socket] = true
		perFlow[in.Remote] = in.Socket
	}
	if len(seen) != n {
		t.Fatalf("sockets that read something: %v, want all %d", seen, n)
	}
	// Same flow again: same socket (per-flow FIFO), and replies on socket k
	// still leave from the shared port.
	for i, cl := range clients[:8] {
		if _, err := cl.Write(sipMsg("c", 100+i, "")); err != nil {
			t.Fatal(err)
		}
		in := rec.next(t)
		if in.Socket != perFlow[in.Remote] {
			t.Fatalf("flow %s moved from socket %d to %d", in.Remote, perFlow[in.Remote], in.Socket)
		}
		if err := tr.Send(Outbound{Proto: UDP, From: local, To: in.Remote, Socket: i, Data: []byte("pong")}); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		_ = cl.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, src, err := cl.ReadFromUDPAddrPort(buf)
		if err != nil || src.Port() != local.Port() {
			t.Fatalf("reply from %s err %v, want port %d", src, err, local.Port())
		}
	}
}

func TestUDPLargeDatagram(t *testing.T) {
	rec := newRecorder()
	tr := start(t, Config{Listen: []Listen{{Addr: loop4, UDP: true}}}, rec)
	body := strings.Repeat("a", 60*1024)
	msg := sipMsg("big", 1, body)
	cl := dialUDP(t, addr(t, tr, UDP))
	if err := cl.SetWriteBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Write(msg); err != nil {
		t.Fatal(err)
	}
	in := rec.next(t)
	if in.Size != len(msg) || string(in.Msg.Body()) != body {
		t.Fatalf("size %d body %d, want %d/%d", in.Size, len(in.Msg.Body()), len(msg), len(body))
	}
}

func TestUDPTruncated(t *testing.T) {
	rec := newRecorder()
	tr := start(t, Config{Listen: []Listen{{Addr: loop4, UDP: true}}, MaxDatagram: 1000}, rec)
	cl := dialUDP(t, addr(t, tr, UDP))
	if _, err := cl.Write(sipMsg("big", 1, strings.Repeat("b", 1500))); err != nil {
		t.Fatal(err)
	}
	if b := rec.nextBad(t); b.reason != ReasonTruncated || b.proto != UDP {
		t.Fatalf("got %s/%s", b.proto, b.reason)
	}
	// Exactly MaxDatagram bytes still fits.
	body := ""
	for len(sipMsg("fit", 2, body)) < 1000 {
		body += "x"
	}
	exact := sipMsg("fit", 2, body)
	if len(exact) != 1000 {
		t.Fatalf("test message is %d bytes", len(exact))
	}
	if _, err := cl.Write(exact); err != nil {
		t.Fatal(err)
	}
	if in := rec.next(t); in.Size != 1000 {
		t.Fatalf("size %d", in.Size)
	}
	if got := tr.Counters().UDP.Bad[ReasonTruncated]; got != 1 {
		t.Fatalf("truncated counter %d", got)
	}
}

func TestUDPKeepaliveAndGarbage(t *testing.T) {
	rec := newRecorder()
	tr := start(t, Config{Listen: []Listen{{Addr: loop4, UDP: true}}}, rec)
	cl := dialUDP(t, addr(t, tr, UDP))
	for _, d := range []string{"\r\n\r\n", "\r\n"} {
		if _, err := cl.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Write(sipMsg("k", 7, "")); err != nil {
		t.Fatal(err)
	}
	if in := rec.next(t); cseqOf(t, in) != 7 {
		t.Fatal("wrong message")
	}
	if _, err := cl.Write([]byte("HELLO WORLD\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if b := rec.nextBad(t); b.reason != ReasonParse {
		t.Fatalf("reason %s", b.reason)
	}
	// Content-Length beyond the datagram: the boundary is wrong.
	short := []byte(strings.Replace(string(sipMsg("s", 1, "abc")), "Content-Length: 3", "Content-Length: 30", 1))
	if _, err := cl.Write(short); err != nil {
		t.Fatal(err)
	}
	if b := rec.nextBad(t); b.reason != ReasonFraming {
		t.Fatalf("reason %s: %v", b.reason, b.err)
	}
	rec.none(t, 50*time.Millisecond)
}

func TestUDPAddressInUse(t *testing.T) {
	tr := start(t, Config{Listen: []Listen{{Addr: loop4, UDP: true}}, UDPSockets: 2}, newRecorder())
	taken := addr(t, tr, UDP)
	for _, n := range []int{1, 2} {
		_, err := New(Config{Listen: []Listen{{Addr: taken, UDP: true}}, UDPSockets: n}, newRecorder())
		if err == nil {
			t.Fatalf("UDPSockets=%d: second bind of %s succeeded; reuseport must not hide a running instance", n, taken)
		}
	}
}

func TestBufferSizesReported(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	tr := start(t, Config{Listen: []Listen{{Addr: loop4, UDP: true, TCP: true}}, UDPSockets: 3, Logger: log}, newRecorder())
	c := tr.Counters()
	if len(c.Buffers) != 1 {
		t.Fatalf("buffers %+v", c.Buffers)
	}
	b := c.Buffers[0]
	if b.RecvRequested != DefaultRecvBuffer || b.RecvGranted <= 0 || b.SendGranted <= 0 || b.Addr != addr(t, tr, UDP) {
		t.Fatalf("buffer report %+v", b)
	}
	warned := strings.Contains(logs.String(), "smaller than requested")
	if short := b.RecvGranted < b.RecvRequested || b.SendGranted < b.SendRequested; short != warned {
		t.Fatalf("granted %+v but warned=%v", b, warned)
	}
	t.Logf("granted recv %d send %d (warned=%v)", b.RecvGranted, b.SendGranted, warned)
}

func TestBufferWarningOncePerAddress(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// Larger than the kernel grants even with CAP_NET_ADMIN (it caps at INT_MAX/2).
	huge := math.MaxInt32
	tr := start(t, Config{
		Listen:     []Listen{{Addr: loop4, UDP: true}, {Addr: loop6, UDP: true}},
		UDPSockets: 4, RecvBuffer: huge, SendBuffer: 1 << 16, Logger: log,
	}, newRecorder())
	out := logs.String()
	if got := strings.Count(out, "smaller than requested"); got != 2 {
		t.Fatalf("want one warning per listen address (2), got %d:\n%s", got, out)
	}
	if !strings.Contains(out, "net.core.rmem_max") || strings.Contains(out, "net.core.wmem_max") {
		t.Fatalf("warning should name rmem_max only:\n%s", out)
	}
	for _, b := range tr.Counters().Buffers {
		if b.RecvGranted >= huge || b.RecvGranted <= 0 || b.SendGranted < 1<<16 {
			t.Fatalf("buffer report %+v", b)
		}
	}
}
