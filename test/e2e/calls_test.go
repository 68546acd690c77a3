package e2e

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// netCase is one address family / transport combination.
type netCase struct {
	name string
	host string // "127.0.0.1" or "::1"
	t    string // SIPp -t: "u1" (UDP) or "t1" (TCP, one socket)
}

var (
	udp4 = netCase{"udp4", "127.0.0.1", "u1"}
	tcp4 = netCase{"tcp4", "127.0.0.1", "t1"}
	udp6 = netCase{"udp6", "::1", "u1"}
	tcp6 = netCase{"tcp6", "::1", "t1"}
)

// callCase is "one proxy, one UAS (single hop), one UAC".
type callCase struct {
	nc          netCase
	uac, uas    string // scenario files
	calls, rate int
	t1          time.Duration
	timeout     time.Duration // SIPp -timeout for the UAC
	uacExtra    []string
}

// runViaProxy starts sipvigil with a single-hop destination set pointing at
// a SIPp UAS, runs the UAC to completion, then collects the UAS (which ends
// by itself after -m calls).
func runViaProxy(t *testing.T, c callCase) (uac, uas sippResult) {
	t.Helper()
	needProxy(t)
	if c.timeout == 0 {
		c.timeout = 30 * time.Second
	}
	ports := freePorts(t, c.nc.host, 3) // proxy, UAS, UAC
	p := startProxy(t, proxyConfig{
		Host: c.nc.host, Port: ports[0], T1: c.t1, RecordRoute: true,
		Hops: []string{hop(c.nc.host, ports[1], transportOf(c.nc.t))},
	})
	uasRun := startSIPp(t, sipp{
		Name: "uas", Scenario: c.uas, Local: c.nc.host, Port: ports[1], Transport: c.nc.t,
		Calls: c.calls, Timeout: c.timeout + 10*time.Second, RRWant: viaProxy,
	})
	uac = runSIPp(t, sipp{
		Name: "uac", Scenario: c.uac, Local: c.nc.host, Port: ports[2], Remote: p.Addr, Transport: c.nc.t,
		Calls: c.calls, Rate: c.rate, Timeout: c.timeout, Extra: c.uacExtra,
	})
	// The UAS has its own -m; give it a few seconds to finish its last
	// calls (timewait), not more: if the UAC is done, so should it be.
	uas = uasRun.wait(t, 5*time.Second)
	return uac, uas
}

// TestBasicCall: INVITE/100/180/200/ACK/BYE/200 through the proxy over
// UDP and TCP, IPv4 and IPv6. uas_basic.xml also asserts the proxy's
// Record-Route (;lr) on every INVITE, and uac_basic.xml routes ACK and BYE
// with the Route set learnt from it.
func TestBasicCall(t *testing.T) {
	for _, nc := range []netCase{udp4, tcp4, udp6, tcp6} {
		t.Run(nc.name, func(t *testing.T) {
			uac, uas := runViaProxy(t, callCase{nc: nc, uac: "uac_basic.xml", uas: "uas_basic.xml", calls: 20, rate: 50})
			expectAllOK(t, uac, 20)
			expectAllOK(t, uas, 20)
		})
	}
}

// TestReInvite: a re-INVITE inside the dialog (after ACK; 200; ACK; BYE).
func TestReInvite(t *testing.T) {
	for _, nc := range []netCase{udp4, tcp4} {
		t.Run(nc.name, func(t *testing.T) {
			uac, uas := runViaProxy(t, callCase{nc: nc, uac: "uac_reinvite.xml", uas: "uas_reinvite.xml", calls: 10, rate: 50})
			expectAllOK(t, uac, 10)
			expectAllOK(t, uas, 10)
		})
	}
}

// TestCancelBeforeAnswer: 180, then CANCEL; the UAC needs 200 for the
// CANCEL and 487 for the INVITE; the UAS must receive the CANCEL (relayed
// by the proxy), answer it and send 487, and receive the ACK for the 487.
func TestCancelBeforeAnswer(t *testing.T) {
	for _, nc := range []netCase{udp4, tcp4} {
		t.Run(nc.name, func(t *testing.T) {
			const n = 10
			uac, uas := runViaProxy(t, callCase{nc: nc, uac: "uac_cancel.xml", uas: "uas_cancel.xml", calls: n, rate: 50})
			expectAllOK(t, uac, n)
			expectAllOK(t, uas, n)
			if got := uas.Count("_CANCEL_Recv"); got != n {
				t.Errorf("UAS received %d CANCELs, want %d (counts %v)", got, n, uas.Counts)
			}
			if got := uas.Count("_ACK_Recv"); got != n {
				t.Errorf("UAS received %d ACKs for its 487, want %d", got, n)
			}
		})
	}
}

// Test486Relayed: the UAS rejects with 486. The UAC must get the 486 and
// ACK it; the UAS must get exactly one ACK, the proxy's own hop-by-hop ACK
// (same branch as the INVITE the UAS received); the UAC's ACK is absorbed
// by the proxy. uas_486.xml fails the call on a second ACK.
func Test486Relayed(t *testing.T) {
	for _, nc := range []netCase{udp4, tcp4} {
		t.Run(nc.name, func(t *testing.T) {
			const n = 10
			uac, uas := runViaProxy(t, callCase{nc: nc, uac: "uac_486.xml", uas: "uas_486.xml", calls: n, rate: 50})
			expectAllOK(t, uac, n)
			expectAllOK(t, uas, n)
			if got := uas.Count("_ACK_Recv"); got != n {
				t.Errorf("UAS received %d ACKs, want exactly %d", got, n)
			}
			// A stray ACK that arrives after the UAS call ended is not a
			// call failure but shows up as an out-of-call / dead-call message.
			if o, d := uas.Stat("OutOfCallMsgs"), uas.Stat("DeadCallMsgs"); o+d != 0 {
				t.Errorf("UAS got %d out-of-call and %d dead-call messages (a forwarded UAC ACK?)\n%s", o, d, uas.details())
			}
		})
	}
}

// TestMaxForwardsZero: an INVITE with Max-Forwards: 0 is answered 483 by the
// proxy and never forwarded (a blackhole on the hop counts what arrives).
func TestMaxForwardsZero(t *testing.T) {
	needProxy(t)
	const n = 5
	ports := freePorts(t, "127.0.0.1", 2) // proxy, UAC; the blackhole binds its own
	hole := newBlackhole(t, "udp", "127.0.0.1")
	p := startProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops: []string{hop("127.0.0.1", hole.port, "udp")},
	})
	uac := runSIPp(t, sipp{
		Name: "uac", Scenario: "uac_483.xml", Local: "127.0.0.1", Port: ports[1], Remote: p.Addr,
		Calls: n, Rate: 50, Timeout: 15 * time.Second,
	})
	expectAllOK(t, uac, n)
	if got := hole.packets(); got != 0 {
		t.Errorf("next hop received %d packets, want 0 (a Max-Forwards: 0 request must not be forwarded):\n%s", got, hole.firstPacket())
	}
}

// TestUASSilent408: the next hop swallows the INVITE and never answers. The
// UAC must see the proxy's 100 Trying and then 408 when Timer B (64*T1)
// fires; t1 is 100ms so that is 6.4 s. Runs in parallel with the other
// slow tests.
func TestUASSilent408(t *testing.T) {
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			needProxy(t)
			const n = 2
			nc := udp4
			if tr == "tcp" {
				nc = tcp4
			}
			ports := freePorts(t, "127.0.0.1", 2) // proxy, UAC; the blackhole binds its own
			hole := newBlackhole(t, tr, "127.0.0.1")
			p := startProxy(t, proxyConfig{
				Host: "127.0.0.1", Port: ports[0], T1: 100 * time.Millisecond, RecordRoute: true,
				Hops: []string{hop("127.0.0.1", hole.port, tr)},
			})
			start := time.Now()
			uac := runSIPp(t, sipp{
				Name: "uac", Scenario: "uac_408.xml", Local: "127.0.0.1", Port: ports[1], Remote: p.Addr,
				Transport: nc.t, Calls: n, Rate: 10, Timeout: 25 * time.Second,
			})
			elapsed := time.Since(start)
			expectAllOK(t, uac, n)
			t.Logf("408 after %s; next hop received %d packets", elapsed.Round(time.Millisecond), hole.packets())
			if hole.packets() == 0 {
				t.Errorf("the INVITE never reached the next hop")
			}
			if elapsed < 6*time.Second {
				t.Errorf("408 after %s: earlier than Timer B (64*T1 = 6.4 s)", elapsed)
			}
		})
	}
}

// TestFailover: two hops in an ordered destination set; the first one
// fails and the call must complete on the second hop's UAS.
//   - udp-unreachable: nothing listens on hop 1 (ICMP port unreachable,
//     or Timer B = 6.4 s with t1 100ms if the proxy does not see ICMP);
//   - tcp-refused: nothing listens on hop 1 (connection refused);
//   - udp-503: hop 1 is a SIPp UAS answering 503 (and expecting the
//     proxy's ACK); the UAC must never see the 503.
func TestFailover(t *testing.T) {
	cases := []struct {
		name    string
		nc      netCase
		with503 bool
	}{
		{"udp-unreachable", udp4, false},
		{"tcp-refused", tcp4, false},
		{"udp-503", udp4, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			needProxy(t)
			const n = 10
			tr := transportOf(c.nc.t)
			ports := freePorts(t, c.nc.host, 4) // proxy, hop1, hop2, UAC
			p := startProxy(t, proxyConfig{
				Host: c.nc.host, Port: ports[0], T1: 100 * time.Millisecond, RecordRoute: true,
				Hops: []string{hop(c.nc.host, ports[1], tr), hop(c.nc.host, ports[2], tr)},
			})
			var first *sippRun
			if c.with503 {
				// No -m: whether the proxy tries hop 1 for every call or
				// marks it down after the first 503 is its policy; we only
				// require that hop 1 was tried. The harness stops it.
				first = startSIPp(t, sipp{
					Name: "uas503", Scenario: "uas_503.xml", Local: c.nc.host, Port: ports[1],
					Transport: c.nc.t, Timeout: 40 * time.Second,
				})
			}
			second := startSIPp(t, sipp{
				Name: "uas", Scenario: "uas_basic.xml", Local: c.nc.host, Port: ports[2], Transport: c.nc.t,
				Calls: n, Timeout: 40 * time.Second, RRWant: viaProxy,
			})
			start := time.Now()
			uac := runSIPp(t, sipp{
				Name: "uac", Scenario: "uac_basic.xml", Local: c.nc.host, Port: ports[3], Remote: p.Addr,
				Transport: c.nc.t, Calls: n, Rate: 20, Timeout: 30 * time.Second,
			})
			t.Logf("UAC done after %s", time.Since(start).Round(time.Millisecond))
			expectAllOK(t, uac, n)
			expectAllOK(t, second.wait(t, 5*time.Second), n)
			if first != nil {
				r := first.wait(t, 0) // SIGUSR1: finish calls in progress, dump stats
				t.Log(r.String())
				if r.Stat("SuccessfulCall") < 1 || r.Stat("FailedCall") != 0 {
					t.Errorf("hop 1 (503) must have been tried and must have got an ACK for each 503\n%s", r.details())
				}
			}
		})
	}
}

// blackhole is a next hop that reads and never answers, counting what it
// receives (UDP datagrams or TCP reads).
type blackhole struct {
	port  int // bound by the blackhole itself (port 0): no window for another socket to take it
	n     atomic.Int64
	first atomic.Value // []byte
}

func newBlackhole(t *testing.T, network, host string) *blackhole {
	t.Helper()
	b := &blackhole{}
	addr := net.JoinHostPort(host, "0")
	record := func(p []byte) {
		if b.n.Add(1) == 1 {
			b.first.Store(bytes.Clone(p))
		}
	}
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		b.port = pc.LocalAddr().(*net.UDPAddr).Port
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 65536)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				record(buf[:n])
			}
		}()
	case "tcp":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		b.port = ln.Addr().(*net.TCPAddr).Port
		var conns []net.Conn
		done := make(chan struct{})
		t.Cleanup(func() {
			ln.Close()
			<-done
			for _, c := range conns {
				c.Close()
			}
		})
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns = append(conns, c)
				go func() {
					buf := make([]byte, 65536)
					for {
						n, err := c.Read(buf)
						if err != nil {
							return
						}
						record(buf[:n])
					}
				}()
			}
		}()
	}
	return b
}

func (b *blackhole) packets() int { return int(b.n.Load()) }

func (b *blackhole) firstPacket() string {
	if p, ok := b.first.Load().([]byte); ok {
		return string(p)
	}
	return ""
}
