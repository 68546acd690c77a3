package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of the suspend/queue/resume pipeline: named delay
// queues, suspend rules, SIGTERM with queued requests. The HTTP route
// lookups are in lookup_test.go.

// holdQueue renders a queue named "hold" and one suspend rule that sends
// INVITEs to it: in-dialog ones (re-INVITEs) when InDialog, initial ones
// otherwise. Zero fields keep the proxy's defaults.
type holdQueue struct {
	Delay    time.Duration
	MaxWait  time.Duration
	Capacity int
	InDialog bool
	Queued   string // shutdown.queued: "release" or "reject"
}

func (q holdQueue) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "queues:\n  hold:\n    delay: %s\n", q.Delay)
	if q.MaxWait > 0 {
		fmt.Fprintf(&b, "    max_wait: %s\n", q.MaxWait)
	}
	if q.Capacity > 0 {
		fmt.Fprintf(&b, "    capacity: %d\n", q.Capacity)
	}
	b.WriteString("    on_full: {code: 503, reason: \"Queue Full\", retry_after: 5s}\n")
	fmt.Fprintf(&b, "suspend:\n  - name: hold-invites\n    match: {methods: [INVITE], in_dialog: %t}\n    queue: hold\n", q.InDialog)
	if q.Queued != "" {
		fmt.Fprintf(&b, "shutdown: {queued: %s}\n", q.Queued)
	}
	return b.String()
}

// reinviteRecipe is the re-INVITE delay recipe exactly as the embedded
// default config carries it (10 ms).
const reinviteRecipe = `queues:
  reinvite:
    delay: 10ms
    consumers: 1
    capacity: 10000
    max_wait: 5s
    on_full: {code: 503, reason: "Queue Full", retry_after: 5s}
suspend:
  - name: reinvite-delay
    match: {methods: [INVITE], in_dialog: true}
    queue: reinvite
`

// TestSuspendScenariosDirect validates the new scenario pairs without the
// proxy, like TestScenariosDirect: if a suspend test fails while this
// passes, the proxy is at fault. The negative control sends the BYE before
// the re-INVITE and must fail every UAS call, which proves the dialog-order
// test detects a BYE that overtakes the suspended re-INVITE.
func TestSuspendScenariosDirect(t *testing.T) {
	cases := []struct {
		name, uac, uas string
		rr             bool     // the UAS checks Record-Route (-set rr_want "")
		uacExtra       []string // on top of -recv_timeout
		fails          string   // "uas" for the negative control, "" = positive
	}{
		// the UAS answers the BYE first, then the re-INVITE
		{"reinvite-bye", "uac_reinvite_bye.xml", "uas_reinvite_bye.xml", true, []string{"-pause_msg_ign"}, ""},
		// the UAS answers in arrival order: the UAC takes either order
		{"reinvite-bye-inorder", "uac_reinvite_bye.xml", "uas_reinvite_bye_inorder.xml", true, []string{"-pause_msg_ign"}, ""},
		{"neg-bye-before-reinvite", "neg_uac_bye_before_reinvite.xml", "uas_reinvite_bye.xml", true, nil, "uas"},
		// the UAS plays the proxy's part: 100, then 200/487 for the CANCEL
		{"cancel-suspended", "uac_cancel_suspended.xml", "uas_trying_cancel.xml", false, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			needSIPp(t)
			const n = 5
			ports := freePorts(t, "127.0.0.1", 2)
			timeout := 10 * time.Second
			if c.fails != "" {
				timeout = 5 * time.Second
			}
			var rr *string
			if c.rr {
				rr = direct
			}
			uasRun := startSIPp(t, sipp{
				Name: "uas", Scenario: c.uas, Local: "127.0.0.1", Port: ports[0],
				Calls: n, Timeout: timeout, RRWant: rr,
			})
			uac := runSIPp(t, sipp{
				Name: "uac", Scenario: c.uac, Local: "127.0.0.1", Port: ports[1],
				Remote: "127.0.0.1:" + strconv.Itoa(ports[0]), Calls: n, Rate: 50, Timeout: timeout,
				Extra: append([]string{"-recv_timeout", "3000"}, c.uacExtra...),
			})
			uas := uasRun.wait(t, timeout+2*time.Second)
			switch c.fails {
			case "":
				expectAllOK(t, uac, n)
				expectAllOK(t, uas, n)
			case "uas":
				expectFailed(t, uas, n)
			}
		})
	}
}

// TestSuspendReInviteDelay: re-INVITEs are held 100 ms (long enough to
// measure; the recipe uses 10 ms) and initial INVITEs are not held at all.
// Both SIPp processes write -trace_msg logs whose per-message timestamps
// come from the same wall clock, so for every call the transit time of
// each request through the proxy is UAS-received minus UAC-sent:
//   - re-INVITE: at least the delay, less traceSkew (and well under
//     SIPp's 500 ms retransmission, so it was the original, not a
//     retransmission, that got through);
//   - initial INVITE: less than the delay (in_dialog: true matched only
//     the re-INVITE);
//   - the UAS received the re-INVITE before the BYE.
func TestSuspendReInviteDelay(t *testing.T) {
	needProxy(t)
	const (
		n     = 20
		delay = 100 * time.Millisecond
	)
	ports := freePorts(t, "127.0.0.1", 3) // proxy, UAS, UAC
	p := startProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops:  []string{hop("127.0.0.1", ports[1], "udp")},
		Extra: holdQueue{Delay: delay, InDialog: true}.yaml(),
	})
	traces := t.TempDir()
	uasLog, uacLog := filepath.Join(traces, "uas_messages.log"), filepath.Join(traces, "uac_messages.log")
	uasRun := startSIPp(t, sipp{
		Name: "uas", Scenario: "uas_reinvite.xml", Local: "127.0.0.1", Port: ports[1],
		Calls: n, Timeout: 20 * time.Second, RRWant: viaProxy,
		Extra: []string{"-trace_msg", "-message_file", uasLog},
	})
	uac := runSIPp(t, sipp{
		Name: "uac", Scenario: "uac_reinvite.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr,
		Calls: n, Rate: 20, Timeout: 15 * time.Second,
		Extra: []string{"-trace_msg", "-message_file", uacLog},
	})
	uas := uasRun.wait(t, 5*time.Second)
	expectAllOK(t, uac, n)
	expectAllOK(t, uas, n)

	sent := firstPerCall(readTrace(t, uacLog), true)
	recv := firstPerCall(readTrace(t, uasLog), false)
	if len(sent) != n || len(recv) != n {
		t.Fatalf("traces hold %d UAC and %d UAS calls, want %d each (%s, %s)", len(sent), len(recv), n, uacLog, uasLog)
	}
	var minRe, maxRe, maxInit time.Duration
	minRe = time.Hour
	for callID, s := range sent {
		r := recv[callID]
		if r == nil {
			t.Errorf("call %s: the UAS trace has no message of it", callID)
			continue
		}
		reSent, reRecv := s["2 INVITE"], r["2 INVITE"]
		inSent, inRecv := s["1 INVITE"], r["1 INVITE"]
		bye := r["3 BYE"]
		if reSent.IsZero() || reRecv.IsZero() || inSent.IsZero() || inRecv.IsZero() || bye.IsZero() {
			t.Errorf("call %s: missing INVITE, re-INVITE or BYE in the traces (UAC sent %v, UAS received %v)", callID, s, r)
			continue
		}
		re, init := reRecv.Sub(reSent), inRecv.Sub(inSent)
		minRe, maxRe, maxInit = min(minRe, re), max(maxRe, re), max(maxInit, init)
		if re < delay-traceSkew {
			t.Errorf("call %s: the UAS received the re-INVITE %s after the UAC sent it, want >= %s (the queue delay, less %s of trace skew)", callID, re, delay, traceSkew)
		}
		if re > delay+400*time.Millisecond {
			t.Errorf("call %s: re-INVITE transit %s, want < %s (held much longer than the delay)", callID, re, delay+400*time.Millisecond)
		}
		if init >= delay {
			t.Errorf("call %s: initial INVITE transit %s, want < %s (only in-dialog INVITEs may be held)", callID, init, delay)
		}
		if !bye.After(reRecv) {
			t.Errorf("call %s: the UAS received the BYE (%s) before the re-INVITE (%s)", callID, bye.Format(traceTime), reRecv.Format(traceTime))
		}
	}
	t.Logf("re-INVITE transit through the proxy: min %s max %s (delay %s); initial INVITE max %s",
		minRe.Round(time.Microsecond), maxRe.Round(time.Microsecond), delay, maxInit.Round(time.Microsecond))
}

// TestSuspendDialogOrder: with the recipe (re-INVITEs held 10 ms) the UAC
// sends a BYE 1 ms after the re-INVITE, so the BYE reaches the proxy while
// the re-INVITE is suspended. The BYE must wait behind it: the UAS
// (uas_reinvite_bye.xml) requires the re-INVITE first and fails the call
// otherwise. The UAC absorbs the two 200s in either order. 200 calls.
// The -trace_msg logs prove that the BYEs really reached the proxy while
// their re-INVITE was held: the UAC sent them before the UAS got the
// re-INVITE.
func TestSuspendDialogOrder(t *testing.T) {
	needProxy(t)
	const n = 200
	ports := freePorts(t, "127.0.0.1", 3)
	p := startProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops:  []string{hop("127.0.0.1", ports[1], "udp")},
		Extra: reinviteRecipe,
	})
	traces := t.TempDir()
	uasLog, uacLog := filepath.Join(traces, "uas_messages.log"), filepath.Join(traces, "uac_messages.log")
	uasRun := startSIPp(t, sipp{
		Name: "uas", Scenario: "uas_reinvite_bye.xml", Local: "127.0.0.1", Port: ports[1],
		Calls: n, Timeout: 25 * time.Second, RRWant: viaProxy,
		Extra: []string{"-trace_msg", "-message_file", uasLog},
	})
	uac := runSIPp(t, sipp{
		Name: "uac", Scenario: "uac_reinvite_bye.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr,
		Calls: n, Rate: 100, Timeout: 20 * time.Second,
		// The proxy's 100 for the re-INVITE arrives during the 1 ms pause
		// (-pause_msg_ign) or, when SIPp wakes late, on the BYE's send step,
		// where any message counts as unexpected. -abortunexp off lets the
		// UAC ignore it instead of aborting the call: the UAC only sends;
		// the order is judged by the UAS, which keeps aborting on anything
		// unexpected.
		Extra: []string{"-pause_msg_ign", "-default_behaviors", "all,-abortunexp", "-trace_msg", "-message_file", uacLog},
	})
	uas := uasRun.wait(t, 5*time.Second)
	expectAllOK(t, uac, n)
	expectAllOK(t, uas, n)
	if got := uas.Count("_BYE_Recv"); got != n {
		t.Errorf("UAS received %d BYEs, want %d (counts %v)", got, n, uas.Counts)
	}

	sent := firstPerCall(readTrace(t, uacLog), true)
	recv := firstPerCall(readTrace(t, uasLog), false)
	held := 0
	var maxGap time.Duration
	for callID, s := range sent {
		bye, re := s["3 BYE"], recv[callID]["2 INVITE"]
		if bye.IsZero() || re.IsZero() {
			continue
		}
		maxGap = max(maxGap, bye.Sub(s["2 INVITE"]))
		if bye.Before(re.Add(-traceSkew)) {
			held++
		}
	}
	t.Logf("%d of %d BYEs were sent while their re-INVITE was held; BYE sent at most %s after its re-INVITE",
		held, n, maxGap.Round(time.Microsecond))
	// SIPp's 1 ms pause stretches when the box is busy; a BYE sent after
	// the 10 ms hold proves nothing but is no proxy fault either. Most
	// must have been held, or the test has lost its point.
	if held < n*9/10 {
		t.Errorf("only %d of %d BYEs reached the proxy while their re-INVITE was suspended: the test did not exercise the wait-behind path", held, n)
	}
}

// TestSuspendCancel: initial INVITEs are held 2 s; the UAC gets the
// proxy's 100 Trying at once, CANCELs after 300 ms and must get the 200
// for the CANCEL and the 487 at once, not when the delay runs out. The
// INVITE must never be forwarded: the next hop is a blackhole that must
// still have received nothing well after the 2 s delay has passed.
func TestSuspendCancel(t *testing.T) {
	needProxy(t)
	const (
		n     = 3
		delay = 2 * time.Second
	)
	ports := freePorts(t, "127.0.0.1", 2) // proxy, UAC; the blackhole binds its own
	hole := newBlackhole(t, "udp", "127.0.0.1")
	p := startProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops:  []string{hop("127.0.0.1", hole.port, "udp")},
		Extra: holdQueue{Delay: delay, InDialog: false}.yaml(),
	})
	start := time.Now()
	uac := runSIPp(t, sipp{
		Name: "uac", Scenario: "uac_cancel_suspended.xml", Local: "127.0.0.1", Port: ports[1], Remote: p.Addr,
		Calls: n, Rate: 10, Timeout: 10 * time.Second,
	})
	took := time.Since(start)
	expectAllOK(t, uac, n)
	// Calls start at 0, 100, 200 ms and CANCEL 300 ms later: a proxy that
	// answers the CANCEL at once is done long before the first INVITE
	// would have been released at 2 s.
	if took >= delay-200*time.Millisecond {
		t.Errorf("the UAC needed %s for %d CANCELs, want < %s: the CANCEL was not answered at once", took.Round(time.Millisecond), n, delay-200*time.Millisecond)
	}
	// past the last INVITE's release time, plus margin
	time.Sleep(time.Until(start.Add(delay + 200*time.Millisecond + 500*time.Millisecond)))
	if got := hole.packets(); got != 0 {
		t.Errorf("next hop received %d packets, want 0 (a cancelled suspended INVITE must never be forwarded):\n%s", got, hole.firstPacket())
	}
	t.Logf("UAC done in %s; next hop received %d packets %s after start", took.Round(time.Millisecond), hole.packets(), time.Since(start).Round(time.Millisecond))
}

// TestSuspendQueueFull: the queue holds 10 requests for 3 s. 11 INVITEs
// arrive at once: exactly one gets the on_full reply (503 Queue Full with
// Retry-After: 5) at once, never forwarded; the other 10 get 100 Trying at
// once and are forwarded after the delay to a UAS that answers 486, which
// reaches the UAC. The Go UAC ACKs every final response.
func TestSuspendQueueFull(t *testing.T) {
	needProxy(t)
	const (
		capacity = 10
		delay    = 3 * time.Second
	)
	ports := freePorts(t, "127.0.0.1", 2)
	p := startProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops:  []string{hop("127.0.0.1", ports[1], "udp")},
		Extra: holdQueue{Delay: delay, Capacity: capacity, InDialog: false}.yaml(),
	})
	uasRun := startSIPp(t, sipp{
		Name: "uas", Scenario: "uas_486.xml", Local: "127.0.0.1", Port: ports[1],
		Calls: capacity, Timeout: 15 * time.Second, RRWant: viaProxy,
	})
	c := newGoUAC(t, p.Addr)
	var ids []string
	for i := range capacity + 1 {
		id := fmt.Sprintf("full-%d-%d", i, ports[0])
		ids = append(ids, id)
		c.invite(id)
	}
	full, forwarded := 0, 0
	for _, id := range ids {
		sent := c.sentAt(id)
		f, all, ok := c.final(id, delay+3*time.Second)
		switch {
		case !ok:
			t.Errorf("call %s: no final response (%s)", id, describeResps(sent, all))
		case f.code == 503:
			full++
			if f.reason != "Queue Full" || f.retryAfter != "5" {
				t.Errorf("call %s: got %q Retry-After %q, want the on_full reply 503 Queue Full with Retry-After: 5", id, f.String(), f.retryAfter)
			}
			if d := f.at.Sub(sent); d > 500*time.Millisecond {
				t.Errorf("call %s: on_full reply after %s, want it at once (< 500ms)", id, d.Round(time.Millisecond))
			}
		case f.code == 486:
			forwarded++
			if len(all) == 0 || all[0].code != 100 || all[0].at.Sub(sent) > 500*time.Millisecond {
				t.Errorf("call %s: want 100 Trying at once, then the final response: %s", id, describeResps(sent, all))
			}
			if d := f.at.Sub(sent); d < delay-50*time.Millisecond {
				t.Errorf("call %s: 486 after %s, before the queue delay %s", id, d.Round(time.Millisecond), delay)
			}
		default:
			t.Errorf("call %s: unexpected final response: %s", id, describeResps(sent, all))
		}
		t.Logf("call %s: %s", id, describeResps(sent, c.responses(id)))
	}
	if full != 1 || forwarded != capacity {
		t.Errorf("%d on_full replies and %d forwarded calls, want exactly 1 and %d", full, forwarded, capacity)
	}
	expectAllOK(t, uasRun.wait(t, 5*time.Second), capacity)
}

// TestSuspendMaxWait: the queue would hold initial INVITEs for 2 s but
// max_wait is 300 ms, so each suspended transaction is answered 408 after
// about 300 ms (after the 100 Trying) and never forwarded. The config is
// accepted with a warning (delay >= max_wait).
func TestSuspendMaxWait(t *testing.T) {
	needProxy(t)
	const (
		n       = 3
		delay   = 2 * time.Second
		maxWait = 300 * time.Millisecond
	)
	ports := freePorts(t, "127.0.0.1", 1) // proxy; the blackhole binds its own
	hole := newBlackhole(t, "udp", "127.0.0.1")
	p := startProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops:  []string{hop("127.0.0.1", hole.port, "udp")},
		Extra: holdQueue{Delay: delay, MaxWait: maxWait, InDialog: false}.yaml(),
	})
	c := newGoUAC(t, p.Addr)
	start := time.Now()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("expire-%d-%d", i, ports[0])
		ids = append(ids, id)
		c.invite(id)
	}
	for _, id := range ids {
		sent := c.sentAt(id)
		f, all, ok := c.final(id, 3*time.Second)
		t.Logf("call %s: %s", id, describeResps(sent, all))
		if !ok || f.code != 408 {
			t.Errorf("call %s: want 408 after max_wait, got %s", id, describeResps(sent, all))
			continue
		}
		if d := f.at.Sub(sent); d < maxWait-20*time.Millisecond || d > maxWait+700*time.Millisecond {
			t.Errorf("call %s: 408 after %s, want about max_wait %s", id, d.Round(time.Millisecond), maxWait)
		}
		if all[0].code != 100 {
			t.Errorf("call %s: want 100 Trying first: %s", id, describeResps(sent, all))
		}
	}
	time.Sleep(time.Until(start.Add(delay + 500*time.Millisecond)))
	if got := hole.packets(); got != 0 {
		t.Errorf("next hop received %d packets, want 0 (an expired suspended INVITE must never be forwarded):\n%s", got, hole.firstPacket())
	}
	if log := readFile(p.logPath); !strings.Contains(log, "not less than max_wait") {
		t.Errorf("no warning about delay >= max_wait in the log:\n%s", tail(log, 20))
	}
}

// TestSuspendSIGTERM: five initial INVITEs are held 3 s when SIGTERM
// arrives (max_wait 10 s, so nothing expires by itself).
//   - queued: release: each is forwarded at once and the call completes
//     through the draining proxy, long before the 3 s delay would have
//     released it;
//   - queued: reject: each is answered 503 at once and never forwarded.
//
// Either way every transaction gets its final response, the proxy logs
// the queue on the way out and exits 0.
func TestSuspendSIGTERM(t *testing.T) {
	const (
		n     = 5
		delay = 3 * time.Second
	)
	t.Run("release", func(t *testing.T) {
		needProxy(t)
		ports := freePorts(t, "127.0.0.1", 3)
		p := startProxy(t, proxyConfig{
			Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
			Hops:  []string{hop("127.0.0.1", ports[1], "udp")},
			Extra: holdQueue{Delay: delay, MaxWait: 10 * time.Second, InDialog: false, Queued: "release"}.yaml(),
		})
		uas := startSIPp(t, sipp{
			Name: "uas", Scenario: "uas_basic.xml", Local: "127.0.0.1", Port: ports[1],
			Calls: n, Timeout: 15 * time.Second, RRWant: viaProxy,
		})
		uac := startSIPp(t, sipp{
			Name: "uac", Scenario: "uac_basic.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr,
			Calls: n, Rate: 20, Timeout: 15 * time.Second,
		})
		// all five INVITEs are out (and held) after 250 ms
		time.Sleep(700 * time.Millisecond)
		signalled := sigterm(t, p)
		res := uac.wait(t, 10*time.Second)
		released := time.Since(signalled)
		expectAllOK(t, res, n)
		expectAllOK(t, uas.wait(t, 5*time.Second), n)
		// the first INVITE would leave the queue 2.3 s after the signal
		if released > delay-700*time.Millisecond-500*time.Millisecond {
			t.Errorf("calls completed %s after SIGTERM, want at once (well before the 3 s delay ran out)", released.Round(time.Millisecond))
		}
		t.Logf("calls completed %s after SIGTERM", released.Round(time.Millisecond))
		expectCleanExit(t, p, signalled)
	})
	t.Run("reject", func(t *testing.T) {
		needProxy(t)
		ports := freePorts(t, "127.0.0.1", 1) // proxy; the blackhole binds its own
		hole := newBlackhole(t, "udp", "127.0.0.1")
		p := startProxy(t, proxyConfig{
			Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
			Hops:  []string{hop("127.0.0.1", hole.port, "udp")},
			Extra: holdQueue{Delay: delay, MaxWait: 10 * time.Second, InDialog: false, Queued: "reject"}.yaml(),
		})
		c := newGoUAC(t, p.Addr)
		var ids []string
		for i := range n {
			id := fmt.Sprintf("reject-%d-%d", i, ports[0])
			ids = append(ids, id)
			c.invite(id)
		}
		time.Sleep(300 * time.Millisecond)
		for _, id := range ids {
			if rs := c.responses(id); len(rs) != 1 || rs[0].code != 100 {
				t.Errorf("call %s before SIGTERM: want exactly 100 Trying (suspended), got %s", id, describeResps(c.sentAt(id), rs))
			}
		}
		signalled := sigterm(t, p)
		for _, id := range ids {
			f, all, ok := c.final(id, time.Until(signalled.Add(2*time.Second)))
			t.Logf("call %s: %s", id, describeResps(c.sentAt(id), all))
			if !ok || f.code != 503 {
				t.Errorf("call %s: want 503 after SIGTERM with queued: reject, got %s", id, describeResps(c.sentAt(id), all))
				continue
			}
			if d := f.at.Sub(signalled); d > 500*time.Millisecond {
				t.Errorf("call %s: 503 came %s after SIGTERM, want at once", id, d.Round(time.Millisecond))
			}
		}
		if got := hole.packets(); got != 0 {
			t.Errorf("next hop received %d packets, want 0 (rejected requests must not be forwarded); the first one:\n%s", got, hole.firstPacket())
		}
		expectCleanExit(t, p, signalled)
	})
}

// sigterm marks the proxy as stopped by the test and sends SIGTERM.
func sigterm(t *testing.T, p *proxy) time.Time {
	t.Helper()
	p.stopping = true
	now := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return now
}

// expectCleanExit waits for the proxy to exit by itself after SIGTERM
// (every transaction has its final response, so it need not use its
// grace), requires exit code 0, and requires the per-queue statistics in
// the log: a line after "draining" naming the queue (queue=hold) with its
// enqueued count (whatever else it reports).
func expectCleanExit(t *testing.T, p *proxy, signalled time.Time) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(8 * time.Second): // it lingers 2 s for in-dialog requests
		t.Fatalf("sipvigil still running %s after SIGTERM with every transaction answered", time.Since(signalled).Round(time.Millisecond))
	}
	log := readFile(p.logPath)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("sipvigil exit code %d after SIGTERM, want 0\n%s", code, tail(log, 50))
	}
	t.Logf("exited 0, %s after SIGTERM", time.Since(signalled).Round(time.Millisecond))
	_, after, _ := strings.Cut(log, "draining")
	var report []string
	for _, l := range strings.Split(after, "\n") {
		if strings.Contains(l, "queue=hold") {
			report = append(report, l)
		}
	}
	t.Logf("queue lines after SIGTERM:\n%s", strings.Join(report, "\n"))
	stats := false
	for _, l := range report {
		stats = stats || strings.Contains(strings.ToLower(l), "enqueued")
	}
	if !stats {
		t.Errorf("no per-queue statistics after SIGTERM (want a log line with queue=hold and its enqueued count):\n%s", tail(log, 30))
	}
}

// TestSuspendHoldTime is the exact version of the delay check, on one
// clock: the Go UAC sends initial INVITEs that a queue holds 100 ms, and a
// Go next hop records when each arrives. Each must arrive no earlier than
// the delay after it was sent (the sent time is taken before the write, so
// there is no skew to allow for) and not much later.
func TestSuspendHoldTime(t *testing.T) {
	needProxy(t)
	const (
		n     = 50
		delay = 100 * time.Millisecond
	)
	ports := freePorts(t, "127.0.0.1", 2)
	next := newArrivals(t, "127.0.0.1", ports[1])
	p := startProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops:  []string{hop("127.0.0.1", ports[1], "udp")},
		Extra: holdQueue{Delay: delay, InDialog: false}.yaml(),
	})
	c := newGoUAC(t, p.Addr)
	var ids []string
	for i := range n {
		id := fmt.Sprintf("hold-%d-%d", i, ports[0])
		ids = append(ids, id)
		c.invite(id)
		time.Sleep(time.Duration(i%5) * time.Millisecond) // spread the Due times
	}
	time.Sleep(delay + 300*time.Millisecond)
	minD, maxD := time.Hour, time.Duration(0)
	for _, id := range ids {
		at, ok := next.first(id)
		if !ok {
			t.Errorf("call %s: the INVITE never reached the next hop", id)
			continue
		}
		d := at.Sub(c.sentAt(id))
		minD, maxD = min(minD, d), max(maxD, d)
		if d < delay || d > delay+50*time.Millisecond {
			t.Errorf("call %s: forwarded %s after it was sent, want within [%s, %s]", id, d, delay, delay+50*time.Millisecond)
		}
	}
	t.Logf("hold time over %d INVITEs: min %s max %s (delay %s)", n, minD, maxD, delay)
}

// arrivals is a UDP next hop that never answers and records when the first
// datagram of each Call-ID arrived (time.Now, monotonic).
type arrivals struct {
	mu        sync.Mutex
	firstSeen map[string]time.Time
}

func newArrivals(t *testing.T, host string, port int) *arrivals {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	a := &arrivals{firstSeen: map[string]time.Time{}}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			now := time.Now()
			for _, l := range strings.Split(string(buf[:n]), "\r\n") {
				if name, v, ok := strings.Cut(l, ":"); ok && (strings.EqualFold(name, "Call-ID") || name == "i") {
					a.mu.Lock()
					if _, seen := a.firstSeen[strings.TrimSpace(v)]; !seen {
						a.firstSeen[strings.TrimSpace(v)] = now
					}
					a.mu.Unlock()
					break
				}
			}
		}
	}()
	return a
}

func (a *arrivals) first(callID string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.firstSeen[callID]
	return at, ok
}

// ---------------------------------------------------------------- -trace_msg

// traceSkew is how much earlier than the real send a -trace_msg "sent"
// stamp can look relative to the receiver's stamp. SIPp stamps a sent
// message after sendto returns; on loopback the kernel may run the
// receiver first, so the receiver's stamp can precede the sender's: run
// UAC to UAS directly on a 2-CPU box, SIPp's own traces show transits
// down to -0.25 ms. TestSuspendHoldTime checks the exact bound on one
// clock.
const traceSkew = time.Millisecond

// traceTime is the timestamp layout of SIPp's -trace_msg blocks, e.g.
// "----------------------------------------------- 2026-11-25 20:24:34.263830"
// (local wall clock, microseconds).
const traceTime = "2006-01-02 15:04:05.000000"

// traceMsg is one message of a -trace_msg log.
type traceMsg struct {
	at     time.Time
	sent   bool
	callID string
	cseq   string // "2 INVITE"
}

var (
	traceDir    = regexp.MustCompile(`^(UDP|TCP|TLS|SCTP) message (sent|received)`)
	traceHeader = regexp.MustCompile(`(?i)^(call-id|i|cseq)\s*:\s*(.*?)\s*$`)
)

// readTrace parses a -trace_msg log into its sent and received messages.
// Each message starts with a line of dashes and the timestamp, then
// "UDP message sent (N bytes):" or "UDP message received [N] bytes :".
func readTrace(t *testing.T, path string) []traceMsg {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("trace: %v", err)
	}
	defer f.Close()
	var out []traceMsg
	var cur *traceMsg
	flush := func() {
		if cur != nil && cur.callID != "" {
			out = append(out, *cur)
		}
		cur = nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var stamp time.Time
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, "-----------------------------------------------") {
			flush()
			ts := strings.TrimSpace(strings.TrimLeft(line, "-"))
			stamp, err = time.ParseInLocation(traceTime, ts, time.Local)
			if err != nil {
				stamp = time.Time{} // a block SIPp writes without a time
			}
			continue
		}
		if m := traceDir.FindStringSubmatch(line); m != nil && !stamp.IsZero() {
			cur = &traceMsg{at: stamp, sent: m[2] == "sent"}
			continue
		}
		if cur == nil {
			continue
		}
		if m := traceHeader.FindStringSubmatch(line); m != nil {
			if strings.EqualFold(m[1], "cseq") {
				cur.cseq = strings.Join(strings.Fields(m[2]), " ")
			} else if cur.callID == "" {
				cur.callID = m[2]
			}
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatalf("trace %s: %v", path, err)
	}
	return out
}

// firstPerCall maps Call-ID -> "CSeq" -> time of the first message sent
// (sent) or received (!sent) with that CSeq, requests and responses
// alike; the first one is the request itself for a request the process
// sends (UAC) or receives (UAS), and retransmissions come later.
func firstPerCall(msgs []traceMsg, sent bool) map[string]map[string]time.Time {
	m := map[string]map[string]time.Time{}
	for _, x := range msgs {
		if x.sent != sent {
			continue
		}
		c := m[x.callID]
		if c == nil {
			c = map[string]time.Time{}
			m[x.callID] = c
		}
		if _, ok := c[x.cseq]; !ok {
			c[x.cseq] = x.at
		}
	}
	return m
}
