//go:build !faultinject

package worker

import "github.com/emiago/sipgo/sip"

// faultState is empty in production builds: fault injection exists only
// in binaries built with -tags faultinject (see fault_on.go).
type faultState struct{}

func (w *Worker) initFaults() {}

func (w *Worker) faultHold(*serverCtx, *sip.Response) bool { _ = w.fault; return false }

func (w *Worker) faultRelease(*serverCtx) {}
