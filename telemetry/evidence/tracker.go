package evidence

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sync/atomic"
	"time"

	"sipvigil/proxy/observe"
	"sipvigil/telemetry/order"
)

// Config tunes the tracker. Zero values take the defaults.
type Config struct {
	// Settle is how long a finished record waits for kernel timestamps
	// still in flight (ring buffer, matcher) before it is resolved
	// (default 250ms). Messages still without one then use user-space time.
	Settle time.Duration
	// QueueSize bounds the hand-off from the workers (default 16384
	// records); beyond it records are dropped and counted.
	QueueSize int
	// DialogIdle is how long a dialog side's recent requests are kept for
	// the in-dialog ordering check after its last request (default 2m).
	DialogIdle time.Duration
	// MaxDialogs bounds that state (default 200000 dialog sides); beyond
	// it the check restarts for new dialogs (counted).
	MaxDialogs int
	// Wall converts CLOCK_MONOTONIC ns to wall time with one offset for
	// the whole process (kernel.Clock.Wall), so conversion keeps order.
	Wall func(mono int64) time.Time
	// Now returns CLOCK_MONOTONIC ns (observe.Monotonic); tests fake it.
	Now func() int64
	// LogCallID, if set, is how a Call-ID appears in logs (tracing.redact);
	// nil logs it as is.
	LogCallID func(string) string
	Log       *slog.Logger
}

// Defaults.
const (
	DefaultSettle     = 250 * time.Millisecond
	DefaultQueueSize  = 16384
	DefaultDialogIdle = 2 * time.Minute
	DefaultMaxDialogs = 200000
	// forwardsPerSide caps the requests remembered per dialog side: a
	// reorder is between neighbours, and a long call must not grow.
	forwardsPerSide = 32
	// dialogGCInterval is how often idle dialog sides are collected.
	dialogGCInterval = 10 * time.Second
)

// Sink receives resolved transactions on the tracker goroutine. It may
// keep t. Exporters (traces) and metrics are sinks.
type Sink interface {
	Export(t *Txn)
}

// Stats are cumulative counters.
type Stats struct {
	Records      uint64 // handed over by workers
	Dropped      uint64 // lost because the hand-off queue was full
	Resolved     uint64 // resolved and given to the sinks
	MsgsKernel   uint64 // messages with a kernel timestamp
	MsgsUser     uint64 // messages that fell back to user-space time
	Violations   map[string]uint64
	DialogsReset uint64 // dialog sides forgotten because MaxDialogs was reached
}

// Tracker resolves and checks transaction records. Txn may be called from
// any goroutine; everything else runs on Run's goroutine.
type Tracker struct {
	cfg   Config
	in    chan *observe.Txn
	sinks []Sink

	pending []held // FIFO by hand-over time
	dialogs map[string]*dialogSide
	nextGC  int64

	records, dropped, resolved, msgsKernel, msgsUser, dialogsReset atomic.Uint64
	violations                                                     [3]atomic.Uint64 // order.Kinds
}

type held struct {
	rec *observe.Txn
	due int64
}

type dialogSide struct {
	forwards []order.Forward
	last     int64
}

var _ observe.TxnObserver = (*Tracker)(nil)

// New returns a tracker that feeds sinks.
func New(cfg Config, sinks ...Sink) *Tracker {
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.DialogIdle <= 0 {
		cfg.DialogIdle = DefaultDialogIdle
	}
	if cfg.MaxDialogs <= 0 {
		cfg.MaxDialogs = DefaultMaxDialogs
	}
	if cfg.Now == nil {
		cfg.Now = observe.Monotonic
	}
	if cfg.Wall == nil {
		offset := time.Now().UnixNano() - observe.Monotonic()
		cfg.Wall = func(mono int64) time.Time { return time.Unix(0, mono+offset) }
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{
		cfg:     cfg,
		in:      make(chan *observe.Txn, cfg.QueueSize),
		sinks:   sinks,
		dialogs: make(map[string]*dialogSide),
	}
}

// Txn hands over a finished record without blocking (observe.TxnObserver).
func (t *Tracker) Txn(rec *observe.Txn) {
	t.records.Add(1)
	select {
	case t.in <- rec:
	default:
		t.dropped.Add(1)
	}
}

// Run resolves records until ctx is done; then it resolves what is left
// (after one last, shorter settle) and returns. Cancel ctx only after the
// workers have stopped, or their last records are lost.
//
// One timer, armed only while there is something to resolve or collect
// (quic-go's pattern): an idle proxy's tracker never wakes up, while under
// load the wake-ups are batched to at most one per Settle/8.
func (t *Tracker) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var lastWake, armed int64 // armed: the deadline the timer is set for, 0 = stopped
	for {
		if next := t.nextWake(lastWake); next != armed {
			timer.Stop() // Go 1.23+ timers: no stale tick survives Stop/Reset
			armed = next
			if next != 0 {
				timer.Reset(time.Duration(next - t.cfg.Now()))
			}
		}
		select {
		case rec := <-t.in:
			t.hold(rec)
		case <-timer.C:
			lastWake, armed = t.cfg.Now(), 0
			t.resolveDue(lastWake)
		case <-ctx.Done():
			t.drainIn()
			time.Sleep(min(t.cfg.Settle, 100*time.Millisecond))
			t.drainIn()
			t.resolveDue(1<<63 - 1)
			return
		}
	}
}

// nextWake returns the monotonic time at which Run must next resolve, or 0
// for never: the oldest held record's due time, or with nothing held the
// next collection of idle dialogs while any is remembered; never sooner
// than one batch (Settle/8) after the last wake-up.
func (t *Tracker) nextWake(lastWake int64) int64 {
	var next int64
	switch {
	case len(t.pending) > 0:
		next = t.pending[0].due
	case len(t.dialogs) > 0:
		next = t.nextGC
	default:
		return 0
	}
	return max(next, lastWake+int64(max(t.cfg.Settle/8, time.Millisecond)))
}

func (t *Tracker) drainIn() {
	for {
		select {
		case rec := <-t.in:
			t.hold(rec)
		default:
			return
		}
	}
}

func (t *Tracker) hold(rec *observe.Txn) {
	t.pending = append(t.pending, held{rec: rec, due: t.cfg.Now() + int64(t.cfg.Settle)})
}

// resolveDue resolves every held record due by now, in hand-over order.
func (t *Tracker) resolveDue(now int64) {
	n := 0
	for n < len(t.pending) && t.pending[n].due <= now {
		t.emit(t.Resolve(t.pending[n].rec))
		t.pending[n] = held{}
		n++
	}
	if n > 0 {
		t.pending = append(t.pending[:0], t.pending[n:]...)
	}
	if now >= t.nextGC {
		t.gcDialogs(t.cfg.Now())
		t.nextGC = now + int64(dialogGCInterval)
	}
}

func (t *Tracker) emit(r *Txn) {
	t.resolved.Add(1)
	for _, s := range t.sinks {
		s.Export(r)
	}
}

// Resolve joins kernel timestamps and runs the ordering checks on one
// record. Exported for tests and replay; Run calls it on its goroutine.
func (t *Tracker) Resolve(rec *observe.Txn) *Txn {
	r := &Txn{Txn: rec, Msgs: make([]Msg, len(rec.Msgs)), Waits: make([]Wait, len(rec.Waits))}
	var kernel, user uint64
	for i := range rec.Msgs {
		m := &rec.Msgs[i]
		rm := &r.Msgs[i]
		rm.Msg = m
		if mono, ifi, ok := m.Stamp.Get(); ok {
			rm.Mono, rm.Source, rm.Ifindex = mono, SourceKernel, ifi
			kernel++
		} else {
			rm.Mono, rm.Source = m.Mono, SourceUser
			user++
		}
		rm.Wall = t.cfg.Wall(rm.Mono)
	}
	t.msgsKernel.Add(kernel)
	t.msgsUser.Add(user)

	// The span runs from the first message in to the last message out.
	r.Start, r.End = t.cfg.Wall(rec.Start), t.cfg.Wall(rec.End)
	var first, last int64
	for i := range r.Msgs {
		m := &r.Msgs[i]
		if m.Dir == observe.In && (first == 0 || m.Mono < first) {
			first = m.Mono
		}
		if m.Dir == observe.Out && m.Mono > last {
			last = m.Mono
		}
	}
	if first != 0 {
		r.Start = t.cfg.Wall(first)
	}
	if last != 0 {
		r.End = t.cfg.Wall(last)
	}
	if r.End.Before(r.Start) {
		r.End = r.Start
	}
	for i := range rec.Waits {
		w := &rec.Waits[i]
		end := w.End
		if end == 0 {
			end = w.Start
		}
		r.Waits[i] = Wait{Wait: w, StartWall: t.cfg.Wall(w.Start), EndWall: t.cfg.Wall(end)}
	}

	r.Violations = order.Responses(responseForwards(r))
	if f, ok := requestForward(r); ok {
		r.Violations = append(r.Violations, t.checkDialog(rec, f)...)
	}
	for _, v := range r.Violations {
		t.countViolation(v.Kind)
	}
	if len(r.Violations) > 0 {
		callID := rec.CallID
		if t.cfg.LogCallID != nil {
			callID = t.cfg.LogCallID(callID)
		}
		t.cfg.Log.Warn("SIP ordering violation", "call_id", callID, "method", rec.Method,
			"cseq", rec.CSeq, "kind", r.Violations[0].Kind, "detail", r.Violations[0].String(),
			"violations", len(r.Violations))
	}
	return r
}

// responseForwards are the responses the record relayed upstream, each
// with the time its inbound original entered.
func responseForwards(r *Txn) []order.Forward {
	var fw []order.Forward
	for i := range r.Msgs {
		m := &r.Msgs[i]
		src := r.Relayed(i)
		if src == nil || m.Status == 0 {
			continue
		}
		fw = append(fw, forward(src, m, r.CSeq, i))
	}
	return fw
}

// forward pairs an inbound message with the outbound one relaying it.
func forward(in, out *Msg, cseq uint32, ref int) order.Forward {
	return order.Forward{
		In: in.Mono, Out: out.Mono, UserIn: in.Msg.Mono, UserOut: out.Msg.Mono,
		Kernel: in.Source == SourceKernel && out.Source == SourceKernel,
		Method: out.Method, Status: out.Status, CSeq: cseq, Ref: ref,
	}
}

// requestForward is the first forward of the record's request, if any.
func requestForward(r *Txn) (order.Forward, bool) {
	if len(r.Msgs) == 0 || r.Msgs[0].Dir != observe.In || r.Msgs[0].Status != 0 {
		return order.Forward{}, false
	}
	for i := range r.Msgs {
		m := &r.Msgs[i]
		if m.Dir == observe.Out && m.Status == 0 && m.Relays == 1 && !m.Retransmission {
			return forward(&r.Msgs[0], m, r.CSeq, i), true
		}
	}
	return order.Forward{}, false
}

// checkDialog compares f with the recent requests of the same dialog side
// and remembers it.
func (t *Tracker) checkDialog(rec *observe.Txn, f order.Forward) []order.Violation {
	key := rec.CallID + "\x00" + rec.FromTag
	d := t.dialogs[key]
	if d == nil {
		if len(t.dialogs) >= t.cfg.MaxDialogs {
			t.gcDialogs(t.cfg.Now())
			if len(t.dialogs) >= t.cfg.MaxDialogs {
				t.dialogsReset.Add(uint64(len(t.dialogs)))
				clear(t.dialogs)
			}
		}
		d = &dialogSide{}
		t.dialogs[key] = d
	}
	var vs []order.Violation
	for _, g := range d.forwards {
		if v, ok := order.RequestPair(g, f); ok {
			vs = append(vs, v)
		}
	}
	if len(d.forwards) == forwardsPerSide {
		d.forwards = append(d.forwards[:0], d.forwards[1:]...)
	}
	d.forwards = append(d.forwards, f)
	d.last = t.cfg.Now()
	return vs
}

func (t *Tracker) gcDialogs(now int64) {
	idle := int64(t.cfg.DialogIdle)
	for k, d := range t.dialogs {
		if now-d.last > idle {
			delete(t.dialogs, k)
		}
	}
}

func (t *Tracker) countViolation(kind string) {
	for i, k := range order.Kinds {
		if k == kind {
			t.violations[i].Add(1)
			return
		}
	}
}

// Stats returns the counters; safe from any goroutine.
func (t *Tracker) Stats() Stats {
	s := Stats{
		Records: t.records.Load(), Dropped: t.dropped.Load(), Resolved: t.resolved.Load(),
		MsgsKernel: t.msgsKernel.Load(), MsgsUser: t.msgsUser.Load(), DialogsReset: t.dialogsReset.Load(),
		Violations: make(map[string]uint64, len(order.Kinds)),
	}
	for i, k := range order.Kinds {
		s.Violations[k] = t.violations[i].Load()
	}
	return s
}

// traceIDDomain separates sipvigil's Call-ID hash from any other SHA-256
// of a Call-ID (docs/tracing.md, "Trace identity").
const traceIDDomain = "sipvigil/call-id\x00"

// TraceID derives a call's trace ID from its Call-ID: the first 16 bytes
// of SHA-256("sipvigil/call-id\x00" + callID). Every instance that handles
// the call computes the same one, so their spans meet in one trace without
// propagation, and `sipvigil audit --call` finds them from the Call-ID.
// This is the one implementation; tracing and audit call it.
func TraceID(callID string) [16]byte {
	// Hash from a stack buffer: the common Call-ID fits, and this runs
	// once per transaction.
	var buf [256]byte
	var sum [sha256.Size]byte
	if len(traceIDDomain)+len(callID) <= len(buf) {
		b := append(buf[:0], traceIDDomain...)
		b = append(b, callID...)
		sum = sha256.Sum256(b)
	} else {
		h := sha256.New()
		h.Write([]byte(traceIDDomain))
		h.Write([]byte(callID))
		h.Sum(sum[:0])
	}
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}
