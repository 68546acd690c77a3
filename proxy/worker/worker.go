package worker

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/sys/unix"

	"sipvigil/proxy/observe"
	"sipvigil/proxy/route"
	"sipvigil/proxy/transport"
	"sipvigil/proxy/txn"
)

// Sender writes one serialized message; *transport.Transport implements it.
type Sender interface {
	Send(out transport.Outbound) error
}

// Local is one address sipvigil listens on, with what it puts in Via and
// Record-Route for it.
type Local struct {
	Proto transport.Proto
	Addr  netip.AddrPort
	Host  string // advertised host (IP literal or name), unbracketed
	Port  int    // advertised port
}

// Options configure a worker. Everything is explicit; nothing is global.
type Options struct {
	Index        int
	InboxSize    int
	LockOSThread bool
	PinCPU       int // CPU to pin the locked thread to, or -1
	Timers       txn.Timers
	TimerC       time.Duration
	RecordRoute  bool
	MaxForwards  int // added when a request has none
	UDPMTU       int // requests larger than this leave over TCP (RFC 3261 §18.1.1)
	Locals       []Local
	Router       *route.Router
	Health       *route.Health
	Probes       []*route.Hop              // hops this worker probes with OPTIONS
	Queues       map[string]*QueueBinding  // suspend queues by name
	Lookups      map[string]*LookupBinding // HTTP route lookups by name
	RejectQueued bool                      // on shutdown answer suspended requests 503 instead of releasing them
	Out          Sender
	Pick         func(callID string) int // the dispatcher's Call-ID → worker map
	// Txns, if set, receives a record of every transaction (see
	// record.go); nil costs nothing.
	Txns observe.TxnObserver
	// KernelStamps gives every recorded outbound message an
	// observe.Stamp for the eBPF matcher to fill (only with Txns).
	KernelStamps bool
	Log          *slog.Logger
}

// Worker is one pinned proxy core. Only its own goroutine touches its maps.
type Worker struct {
	opt      Options
	inbox    chan transport.Inbound
	highMark int
	control  chan control

	servers map[string]*serverCtx // server transaction key → context
	invites map[string]*serverCtx // INVITE branch+sent-by → context, for CANCEL and ACK
	clients map[string]*branch    // client transaction key → branch

	suspended    map[uint64]*serverCtx    // suspension id → context
	parked       map[string]*parkedDialog // Call-ID → messages waiting behind a suspended request
	unparkLater  []string                 // dialogs to drain after the current event
	resume       chan resumption          // released tickets and async results
	stopped      chan struct{}            // closed when Run returns
	shuttingDown atomic.Bool              // set by ShutdownQueued; read by handleResume
	heap         deadlines
	timer        *time.Timer
	rnd          *rand.PCG
	seq          uint64
	packetSeq    uint64 // outbound packet IDs (packetID)
	buf          bytes.Buffer
	hops         []*route.Hop // scratch for route plans
	sets         map[string]*route.Set
	names        []ourName // host:port spellings that are this proxy

	pending       int // server contexts that have not sent a final response
	draining      bool
	drainDeadline time.Time
	drained       chan struct{}
	drainedClosed bool
	drainTimer    timed

	counters Counters
	fault    faultState // test-only fault injection (fault_on.go)
}

// control carries events that come from other goroutines: asynchronous
// transport failures and shutdown.
type control struct {
	kind     controlKind
	key      string
	err      error
	deadline time.Time
}

type controlKind uint8

const (
	ctrlSendFailed controlKind = iota + 1
	ctrlDrain
)

// New builds a worker; Run starts it.
func New(opt Options) *Worker {
	if opt.InboxSize <= 0 {
		opt.InboxSize = 8192
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Pick == nil {
		opt.Pick = func(string) int { return opt.Index }
	}
	w := &Worker{
		opt:       opt,
		inbox:     make(chan transport.Inbound, opt.InboxSize),
		highMark:  opt.InboxSize * 3 / 4,
		control:   make(chan control, 4096),
		servers:   make(map[string]*serverCtx),
		invites:   make(map[string]*serverCtx),
		clients:   make(map[string]*branch),
		suspended: make(map[uint64]*serverCtx),
		parked:    make(map[string]*parkedDialog),
		resume:    make(chan resumption, 4096),
		stopped:   make(chan struct{}),
		rnd:       rand.NewPCG(uint64(time.Now().UnixNano()), uint64(opt.Index)+1),
		drained:   make(chan struct{}),
	}
	w.initFaults()
	w.drainTimer = timed{index: -1, fire: func(w *Worker, now time.Time) { w.drainExpired(now) }}
	w.opt.Log = opt.Log.With("worker", opt.Index)
	w.names = ourNames(opt.Locals)
	w.sets = make(map[string]*route.Set)
	if opt.Router != nil {
		for _, s := range opt.Router.Sets() {
			w.sets[s.Name] = s
		}
	}
	return w
}

// Offer queues a message without blocking; see dispatch.Inbox.
func (w *Worker) Offer(in transport.Inbound, reserved bool) bool {
	if !reserved && len(w.inbox) >= w.highMark {
		return false
	}
	select {
	case w.inbox <- in:
		return true
	default:
		return false
	}
}

// Drain asks the worker to finish its open transactions: it returns a channel
// closed once no server transaction awaits a final response. At deadline the
// worker answers whatever is left with 503, so nothing is left unanswered.
func (w *Worker) Drain(deadline time.Time) <-chan struct{} {
	w.control <- control{kind: ctrlDrain, deadline: deadline}
	return w.drained
}

// ShutdownQueued tells the worker that shutdown has begun, before the
// queues are flushed: with policy "reject" every ticket released from now
// on is answered 503 instead of routed. Safe from any goroutine.
func (w *Worker) ShutdownQueued() { w.shuttingDown.Store(true) }

// InboxDepth is the number of messages waiting; safe from any goroutine.
func (w *Worker) InboxDepth() int { return len(w.inbox) }

// Run is the worker's loop. It returns when ctx is done.
func (w *Worker) Run(ctx context.Context) {
	if w.opt.LockOSThread {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if w.opt.PinCPU >= 0 {
			var set unix.CPUSet
			set.Set(w.opt.PinCPU)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				w.opt.Log.Warn("cannot pin worker to CPU", "cpu", w.opt.PinCPU, "err", err)
			}
		}
	}
	defer close(w.stopped)
	w.timer = time.NewTimer(time.Hour)
	w.timer.Stop()
	now := time.Now()
	w.startProbes(now)
	armed := time.Time{}
	for {
		// Re-arm the single timer only when the earliest deadline moved.
		if next := w.earliest(); !next.Equal(armed) {
			w.timer.Stop()
			if !next.IsZero() {
				w.timer.Reset(time.Until(next))
			}
			armed = next
		}
		select {
		case <-ctx.Done():
			w.timer.Stop()
			return
		case in := <-w.inbox:
			start := time.Now()
			w.handle(in, start)
			// Drain what is already queued before looking at timers again:
			// one wake-up, many messages, same order.
			for n := 0; n < 64; n++ {
				// Due tickets first: a release waiting behind a burst of
				// messages would be released late.
				w.drainResumes()
				select {
				case in = <-w.inbox:
					w.handle(in, time.Now())
					continue
				default:
				}
				break
			}
			w.counters.BusyNanos.Add(uint64(time.Since(start)))
		case c := <-w.control:
			w.handleControl(c, time.Now())
		case r := <-w.resume:
			w.handleResume(r, time.Now())
		case <-w.timer.C:
			armed = time.Time{}
			w.fireDue(time.Now())
		}
		if len(w.unparkLater) > 0 {
			w.flushUnparks(time.Now())
		}
		w.checkDrained(time.Now())
	}
}

// drainResumes handles every resumption already queued, without blocking.
func (w *Worker) drainResumes() {
	for {
		select {
		case r := <-w.resume:
			w.handleResume(r, time.Now())
		default:
			return
		}
	}
}

func (w *Worker) handle(in transport.Inbound, now time.Time) {
	if len(w.parked) > 0 && w.parkCheck(in) {
		return
	}
	switch m := in.Msg.(type) {
	case *sip.Request:
		w.counters.RequestsIn.Add(1)
		w.handleRequest(in, m, now)
	case *sip.Response:
		w.counters.ResponsesIn.Add(1)
		w.handleResponse(in, m, now)
	}
}

func (w *Worker) handleControl(c control, now time.Time) {
	switch c.kind {
	case ctrlSendFailed:
		if b := w.clients[c.key]; b != nil {
			w.counters.TransportErrors.Add(1)
			w.opt.Log.Debug("send failed", "to", b.out.To, "proto", b.out.Proto, "err", c.err)
			w.branchTransportError(b, now)
		}
	case ctrlDrain:
		if w.opt.RejectQueued {
			w.rejectSuspended(now)
		}
		w.draining = true
		w.drainDeadline = c.deadline
		w.schedule(&w.drainTimer, c.deadline)
	}
}

// nextSeq returns a per-worker sequence number for unique branches and tags.
func (w *Worker) nextSeq() uint64 {
	w.seq++
	return w.seq
}
