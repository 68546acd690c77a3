package evidence

import (
	"testing"
	"time"

	"sipvigil/proxy/observe"
)

// TestNextWake pins down when Run's single timer is armed: never while
// idle, at the oldest record's due time while records are held, no more
// often than once per Settle/8, and every dialogGCInterval while dialog
// state remains to be collected.
func TestNextWake(t *testing.T) {
	const settle = 80 * time.Millisecond
	batch := int64(settle / 8)
	var now int64 = int64(time.Hour)
	tr := New(Config{Settle: settle, Now: func() int64 { return now }})

	if got := tr.nextWake(0); got != 0 {
		t.Fatalf("idle tracker: nextWake = %d, want 0 (no timer)", got)
	}

	tr.hold(&observe.Txn{CallID: "a"})
	first := now + int64(settle)
	now += int64(time.Millisecond)
	tr.hold(&observe.Txn{CallID: "b"})
	if got := tr.nextWake(0); got != first {
		t.Fatalf("two held: nextWake = %d, want the oldest's due %d", got, first)
	}
	// Woken at the first due time: the second record is due 1ms later, but
	// the next wake-up waits for the batch.
	if got := tr.nextWake(first); got != first+batch {
		t.Fatalf("just woken: nextWake = %d, want lastWake+Settle/8 = %d", got, first+batch)
	}

	now = first + batch
	tr.resolveDue(now)
	if len(tr.pending) != 0 {
		t.Fatalf("%d records still held after their due time", len(tr.pending))
	}
	if got := tr.nextWake(now); got != 0 {
		t.Fatalf("nothing held, no dialogs: nextWake = %d, want 0", got)
	}

	tr.dialogs["d"] = &dialogSide{last: now}
	if got, want := tr.nextWake(now), now+int64(dialogGCInterval); got != want {
		t.Fatalf("dialog state only: nextWake = %d, want the next GC %d", got, want)
	}
	now += int64(DefaultDialogIdle) + int64(dialogGCInterval)
	tr.resolveDue(now)
	if len(tr.dialogs) != 0 || tr.nextWake(now) != 0 {
		t.Fatalf("after the idle dialog was collected: %d dialogs, nextWake %d; want 0, 0", len(tr.dialogs), tr.nextWake(now))
	}
}
