package e2e

import (
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMDrain: SIGTERM arrives while five calls are ringing. Those calls
// must still complete (their 200, ACK and BYE go through the draining
// proxy), a new INVITE sent after the signal must get 503 at once, and the
// proxy must exit 0 by itself soon after, well before its 32 s grace.
func TestSIGTERMDrain(t *testing.T) {
	needProxy(t)
	const n = 5
	ports := freePorts(t, "127.0.0.1", 4) // proxy, UAS, UAC, late UAC
	p := startProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops: []string{hop("127.0.0.1", ports[1], "udp")},
	})
	uas := startSIPp(t, sipp{
		Name: "uas", Scenario: "uas_slow.xml", Local: "127.0.0.1", Port: ports[1],
		Calls: n, Timeout: 20 * time.Second, RRWant: viaProxy,
	})
	uac := startSIPp(t, sipp{
		Name: "uac", Scenario: "uac_basic.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr,
		Calls: n, Rate: 20, Timeout: 20 * time.Second,
	})
	// All five INVITEs are out after 250 ms; the UAS answers each 1.5 s
	// after its 180.
	time.Sleep(700 * time.Millisecond)
	p.stopping = true
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	late := runSIPp(t, sipp{
		Name: "late", Scenario: "uac_503.xml", Local: "127.0.0.1", Port: ports[3], Remote: p.Addr,
		Calls: 1, Timeout: 10 * time.Second,
	})
	expectAllOK(t, late, 1)

	res := uac.wait(t, 20*time.Second)
	expectAllOK(t, res, n)
	uas.wait(t, 5*time.Second)

	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("sipvigil still running %s after SIGTERM with no open transactions", time.Since(signalled).Round(time.Millisecond))
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("sipvigil exit code %d after SIGTERM, want 0\n%s", code, tail(readFile(p.logPath), 50))
	}
	t.Logf("exited 0, %s after SIGTERM", time.Since(signalled).Round(time.Millisecond))
}
