//go:build !linux

package suspend

import "time"

// fineWindow is 0 off Linux: consumers rely on their time.Timer alone.
// (See finesleep_linux.go for why Linux sleeps the last stretch in the
// kernel.)
const fineWindow = 0

func fineSleep(d time.Duration) { time.Sleep(d) }
