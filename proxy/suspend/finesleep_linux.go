//go:build linux

package suspend

import (
	"syscall"
	"time"
)

// fineWindow is how close to Due a consumer switches from its time.Timer to
// fineSleep. On Linux the Go runtime parks idle threads in epoll_wait, whose
// timeout is in whole milliseconds (runtime/netpoll_epoll.go truncates the
// delay, then sleeps 1 ms for any remainder), so on an idle proxy a timer
// fires up to 1 ms late, roughly uniformly: p99 lateness would be ~1 ms.
// The timer therefore aims fineWindow early (it is never more than about
// 1 ms late, so it lands before Due), and the last stretch is slept in
// clock_nanosleep, which the kernel times in microseconds. Larger than 1 ms
// so that a late timer still lands before Due; small, because the final
// sleep cannot be interrupted by ctx or Flush.
const fineWindow = 2 * time.Millisecond

// fineSleep blocks the calling OS thread for d in the kernel. It is a
// blocking syscall, not polling: the runtime hands the goroutine's P to
// other goroutines meanwhile. EINTR (the runtime's preemption signals)
// resumes the sleep with the time left.
func fineSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
