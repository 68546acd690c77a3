package worker

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestProbingTakesDeadHopOutAndPutsItBack: hop 1 stops answering OPTIONS,
// goes down after failures_to_down probes, new INVITEs go to hop 2 first;
// when hop 1 answers again it comes back after successes_to_up probes.
func TestProbingTakesDeadHopOutAndPutsItBack(t *testing.T) {
	w, rec := newTestWorker(t, `
listen: [{address: 127.0.0.1:5060}]
destinations:
  uas:
    hops: ["127.0.0.1:5070", "127.0.0.1:5080"]
    probe: {enabled: true, interval: 1s, timeout: 500ms, failures_to_down: 2, successes_to_up: 1}
routes: [{name: default, to: uas}]
`)
	w.opt.Probes = w.opt.Router.Hops()
	hop1 := w.opt.Probes[0]
	now := time.Unix(1000, 0)
	w.startProbes(now)

	// step advances time in 100 ms ticks; hop 2 always answers its probes,
	// hop 1 answers only when alive1 is true.
	alive1 := false
	step := func(d time.Duration) {
		for end := now.Add(d); now.Before(end); now = now.Add(100 * time.Millisecond) {
			w.fireDue(now)
			for _, s := range rec.take() {
				req, ok := s.msg.(*sip.Request)
				if !ok || req.Method != sip.OPTIONS {
					continue
				}
				if s.out.To == uas2 || (s.out.To == uas1 && alive1) {
					w.handle(inbound(responseTo(t, req, 200, "OK"), s.out.To), now)
				}
			}
		}
	}
	step(3 * time.Second)
	if w.opt.Health.Up(hop1) {
		t.Fatal("hop 1 still up after 3 s of unanswered probes")
	}
	if w.counters.ProbesSent.Load() < 4 {
		t.Fatalf("only %d probes sent", w.counters.ProbesSent.Load())
	}
	w.handle(inbound(msg(t, invite), uacAddr), now)
	if got := requestsTo(rec.take(), uas2); len(got) != 1 {
		t.Fatal("INVITE did not go to hop 2 first while hop 1 is down")
	}
	alive1 = true
	step(2 * time.Second)
	if !w.opt.Health.Up(hop1) {
		t.Fatal("hop 1 did not come back after answering probes")
	}
}
