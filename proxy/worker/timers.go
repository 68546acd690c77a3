package worker

import (
	"container/heap"
	"time"
)

// timed is embedded by everything that has a protocol deadline. The worker
// keeps all of them in one min-heap, so there is a single runtime timer per
// worker however many transactions are open.
type timed struct {
	at    time.Time
	index int // position in the heap, -1 when not scheduled
	fire  func(w *Worker, now time.Time)
}

type deadlines []*timed

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].at.Before(d[j].at) }
func (d deadlines) Swap(i, j int) {
	d[i], d[j] = d[j], d[i]
	d[i].index = i
	d[j].index = j
}
func (d *deadlines) Push(x any) {
	t := x.(*timed)
	t.index = len(*d)
	*d = append(*d, t)
}
func (d *deadlines) Pop() any {
	old := *d
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.index = -1
	*d = old[:n-1]
	return t
}

// schedule sets t's deadline; a zero time removes it from the heap.
func (w *Worker) schedule(t *timed, at time.Time) {
	switch {
	case at.IsZero() && t.index >= 0:
		heap.Remove(&w.heap, t.index)
	case at.IsZero():
	case t.index >= 0:
		t.at = at
		heap.Fix(&w.heap, t.index)
	default:
		t.at = at
		heap.Push(&w.heap, t)
	}
}

// fireDue runs every deadline at or before now.
func (w *Worker) fireDue(now time.Time) {
	for len(w.heap) > 0 && !w.heap[0].at.After(now) {
		t := heap.Pop(&w.heap).(*timed)
		t.fire(w, now)
	}
}

// earliest returns the next deadline, or zero.
func (w *Worker) earliest() time.Time {
	if len(w.heap) == 0 {
		return time.Time{}
	}
	return w.heap[0].at
}

// minTime returns the earlier of two deadlines, treating zero as "none".
func minTime(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}
