package worker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/transport"
)

// nullSender discards writes, so the benchmark measures the proxy core:
// transaction state, header processing and serialization.
type nullSender struct{}

func (nullSender) Send(transport.Outbound) error { return nil }

// BenchmarkCall runs one whole call through a worker per iteration:
// INVITE, 180, 200, ACK, BYE, 200 (messages pre-parsed; parsing is sipgo's
// and measured by its own benchmarks).
func BenchmarkCall(b *testing.B) {
	w, _ := newTestWorker(&testing.T{}, twoHops)
	w.opt.Out = nullSender{}
	parse := func(s string) sip.Message {
		m, err := sip.ParseMessage([]byte(strings.ReplaceAll(strings.TrimLeft(s, "\n"), "\n", "\r\n")))
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		cid := fmt.Sprintf("bench-%d", i)
		inv := parse(strings.ReplaceAll(invite, "call-1@test", cid)).(*sip.Request)
		w.handle(inbound(inv, uacAddr), now)
		// Find the branch we created to answer as the UAS would.
		var fwd *sip.Request
		for _, br := range w.clients {
			if br.ctx != nil && br.ctx.req == inv {
				fwd = br.req
			}
		}
		r180 := sip.NewResponseFromRequest(fwd, 180, "Ringing", nil)
		r180.To().Params.Add("tag", "t")
		r200 := sip.NewResponseFromRequest(fwd, 200, "OK", nil)
		r200.To().Params.Add("tag", "t")
		w.handle(inbound(r180, uas1), now)
		w.handle(inbound(r200, uas1), now)
		// Let every transaction of this call finish.
		now = now.Add(40 * time.Second)
		w.fireDue(now)
	}
}
