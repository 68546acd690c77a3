package worker

import "time"

// checkDrained closes the drained channel once shutdown has been asked for
// and no server transaction is waiting for a final response.
func (w *Worker) checkDrained(now time.Time) {
	if w.draining && !w.drainedClosed && w.pending <= 0 {
		w.drainedClosed = true
		close(w.drained)
	}
}

// drainExpired runs at the shutdown deadline: every transaction still
// waiting is answered 503 and its branches cancelled, so SIGTERM never
// leaves a caller without a final response.
func (w *Worker) drainExpired(now time.Time) {
	for _, ctx := range w.servers {
		if ctx.finalSent {
			continue
		}
		ctx.cancelled = true
		w.cancelBranches(ctx, now)
		w.respondLocal(ctx, 503, "Shutting Down", now)
	}
}
