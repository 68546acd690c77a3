package e2e

import (
	"testing"
	"time"
)

// TestOrdering180Before200 is the ordering proof for responses: the UAS
// (uas_basic.xml) sends 180 and 200 back to back, the UAC (uac_basic.xml)
// requires the 180 before the 200, so every response reordering inside the
// proxy fails a call. Sequential on purpose (the CI box has 2 cores and the
// load must not share them with other tests). First a smaller UDP and TCP
// run, then 20,000 calls at 2,000 calls/s over UDP (skipped with -short).
func TestOrdering180Before200(t *testing.T) {
	cases := []struct {
		name        string
		nc          netCase
		calls, rate int
		long        bool
	}{
		{"udp-2000", udp4, 2000, 1000, false},
		{"tcp-2000", tcp4, 2000, 1000, false},
		{"udp-20000-at-2000cps", udp4, 20000, 2000, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.long && testing.Short() {
				t.Skip("-short")
			}
			start := time.Now()
			uac, uas := runViaProxy(t, callCase{
				nc: c.nc, uac: "uac_basic.xml", uas: "uas_basic.xml",
				calls: c.calls, rate: c.rate,
				// budget: 10 s of load at 2,000 cps plus drain; SIPp hard
				// stops (exit 255) past it.
				timeout: 30 * time.Second,
			})
			t.Logf("%d calls in %s", c.calls, time.Since(start).Round(time.Millisecond))
			expectAllOK(t, uac, c.calls)
			expectAllOK(t, uas, c.calls)
		})
	}
}

// TestOrderingAckThenReInvite is the ordering proof for requests of one
// dialog: the UAC (uac_ack_reinvite.xml) sends the ACK for the 200 and the
// re-INVITE back to back (no pause at all, stricter than the 300 µs gap of
// the requirement, which SIPp's millisecond pauses cannot express); the UAS
// (uas_reinvite.xml) requires ACK then INVITE, so a re-INVITE that
// overtakes the ACK in the proxy fails the call.
func TestOrderingAckThenReInvite(t *testing.T) {
	for _, nc := range []netCase{udp4, tcp4} {
		t.Run(nc.name, func(t *testing.T) {
			const n = 2000
			uac, uas := runViaProxy(t, callCase{
				nc: nc, uac: "uac_ack_reinvite.xml", uas: "uas_reinvite.xml",
				calls: n, rate: 500, timeout: 30 * time.Second,
			})
			expectAllOK(t, uac, n)
			expectAllOK(t, uas, n)
		})
	}
}

// TestDefaultConfig runs `sipvigil serve` without flags: the embedded
// default listens on 127.0.0.1:5060 (UDP+TCP) and routes to 127.0.0.1:5070
// over UDP with record-routing. Fixed ports, so it skips when either is busy.
func TestDefaultConfig(t *testing.T) {
	needProxy(t)
	for _, a := range []struct{ network, addr string }{
		{"udp", "127.0.0.1:5060"}, {"tcp", "127.0.0.1:5060"}, {"udp", "127.0.0.1:5070"},
	} {
		if portBound(a.network, a.addr) {
			t.Skipf("%s/%s is busy", a.addr, a.network)
		}
	}
	p := launchProxy(t, "127.0.0.1:5060", "(embedded default config)", "serve")
	uas := startSIPp(t, sipp{
		Name: "uas", Scenario: "uas_basic.xml", Local: "127.0.0.1", Port: 5070,
		Calls: 5, Timeout: 20 * time.Second, RRWant: viaProxy,
	})
	ports := freePorts(t, "127.0.0.1", 1)
	uac := runSIPp(t, sipp{
		Name: "uac", Scenario: "uac_basic.xml", Local: "127.0.0.1", Port: ports[0], Remote: p.Addr,
		Calls: 5, Rate: 10, Timeout: 15 * time.Second,
	})
	expectAllOK(t, uac, 5)
	expectAllOK(t, uas.wait(t, 5*time.Second), 5)
}
