//go:build faultinject

package worker

import (
	"os"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Fault injection for the ordering monitor's negative tests, compiled only
// with -tags faultinject. With SIPVIGIL_FAULT_SWAP_1XX_2XX=PREFIX in the
// environment, the worker holds back the first provisional response
// (101-199) of every INVITE whose Call-ID starts with PREFIX and sends it
// right after the transaction's 2xx: exactly the 180-after-200 reorder
// Kamailio's parallel workers produce. The online monitor and `sipvigil
// audit` must report those calls and no others.
type faultState struct {
	swapPrefix string
	held       map[*serverCtx]*sip.Response
}

func (w *Worker) initFaults() {
	w.fault.swapPrefix = os.Getenv("SIPVIGIL_FAULT_SWAP_1XX_2XX")
	w.fault.held = make(map[*serverCtx]*sip.Response)
	if w.fault.swapPrefix != "" {
		w.opt.Log.Warn("FAULT INJECTION: 1xx held back until after the 2xx", "call_id_prefix", w.fault.swapPrefix)
	}
}

// faultHold keeps res (a provisional ctx is about to relay) for later.
func (w *Worker) faultHold(ctx *serverCtx, res *sip.Response) bool {
	if w.fault.swapPrefix == "" || !strings.HasPrefix(ctx.callID, w.fault.swapPrefix) || !ctx.tx.IsInvite() {
		return false
	}
	if _, ok := w.fault.held[ctx]; ok {
		return false
	}
	w.fault.held[ctx] = res
	return true
}

// faultRelease sends a held provisional after ctx's final response.
func (w *Worker) faultRelease(ctx *serverCtx) {
	res, ok := w.fault.held[ctx]
	if !ok {
		return
	}
	delete(w.fault.held, ctx)
	w.sendResponse(ctx, res, false)
}
