package tracing

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/reflect/protoreflect"

	"sipvigil/telemetry/evidence"
)

const (
	// eventLimit caps the events of one span. A transaction's events are
	// its messages plus violations; 1024 bounds a pathological record
	// (timer retransmissions on many forks) while keeping every message
	// of a real one. Events past the limit are counted in the span's
	// dropped_events_count, which the audit reports.
	eventLimit = 1024
	// addrCacheSize is how many peer/local address strings are cached.
	addrCacheSize = 8
	// freeBatches is how many emptied batches are kept for reuse: the one
	// being filled, one being uploaded and one queued need no allocation
	// in steady state; a batch that grows to maxBatchBytes is 1-2 MiB.
	freeBatches = 4
	// maxBatchBytes also ends a batch: 2048 INVITE spans encode to about
	// 7 MB, past the 4 MiB a gRPC receiver (the Collector's, Jaeger's)
	// accepts by default, and gzip gains nothing from batches much larger
	// than its 32 KiB window.
	maxBatchBytes = 1 << 20
	// dropLogEvery rate-limits the warning about a full queue.
	dropLogEvery = 10 * time.Second
)

// Exporter turns resolved transactions into spans and ships them over
// OTLP. A nil *Exporter is valid and does nothing, so the tracker can hold
// one whether or not tracing is enabled.
type Exporter struct {
	client        otlptrace.Client
	closeIdle     func() // after client.Stop: our HTTP transport's idle connections, if any
	sampler       sdktrace.Sampler
	log           *slog.Logger
	batchSize     int
	queueSize     int
	batchTimeout  time.Duration
	exportTimeout time.Duration
	// The resource and scope every batch is sent under, built once.
	resource  *resourcepb.Resource
	resSchema string
	scope     *commonpb.InstrumentationScope

	spans, exported, failed, dropped atomic.Uint64
	closed                           atomic.Bool // Shutdown called: Export does nothing

	// mu guards the batch being filled and the encoder. Export has one
	// caller by contract; the batch timer and ForceFlush take the lock too.
	mu    sync.Mutex
	enc   encoder
	cur   *batch
	timer *time.Timer // BatchTimeout of cur

	// qmu guards the queue between Export and the sender goroutine.
	qmu      sync.Mutex
	queue    []*batch
	queued   int           // spans in queue (not counting the batch being uploaded)
	free     []*batch      // emptied batches for reuse
	seq      uint64        // batches queued so far
	done     uint64        // batches the sender has finished (seq order)
	progress chan struct{} // closed and replaced whenever done advances
	stopped  bool          // the sender is gone or going: queue nothing more
	lastDrop time.Time     // last queue-full warning
	wake     chan struct{} // cap 1: the queue has work
	quit     chan struct{} // closed: the sender stops once the queue is empty
	exited   chan struct{} // closed by the sender when it returns
	// abort cancels the upload in flight (Shutdown past its deadline).
	abortCtx context.Context
	abort    context.CancelFunc

	fmu     sync.Mutex // failure logging
	failing bool       // the last upload failed
	lost    uint64     // spans lost since uploads started failing
	lastErr error
}

// batch is a run of encoded spans (ScopeSpans.spans fields) and the
// request structs it is sent in.
type batch struct {
	buf     []byte
	spans   int
	seq     uint64
	started time.Time // when its first span was added
	ss      *tracepb.ScopeSpans
	req     []*tracepb.ResourceSpans
}

// Stats counts spans: Spans encoded by Export (sampled ones only),
// Exported accepted by the backend, ExportFailed lost to export errors,
// Dropped discarded because the export queue was full (or by a Shutdown
// that ran out of time). Once Shutdown has returned, or a ForceFlush that
// did not run out of time with no Export running, Spans == Exported +
// ExportFailed + Dropped.
type Stats struct{ Spans, Exported, ExportFailed, Dropped uint64 }

// New builds an Exporter that ships spans over OTLP (HTTP or gRPC per
// cfg.Protocol). It does not look at cfg.Enabled: whether to trace at all
// is the caller's decision. ctx bounds only the construction.
func New(ctx context.Context, cfg Config, version string, log *slog.Logger) (*Exporter, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	client, closeIdle, err := newClient(c)
	if err != nil {
		return nil, err
	}
	e, err := newExporter(ctx, c, version, client, log)
	if err != nil {
		return nil, err
	}
	e.closeIdle = closeIdle
	e.log.Info("tracing: exporting spans", "endpoint", redactedURL(c.Endpoint), "protocol", c.Protocol,
		"compression", c.Compression, "sample_ratio", max(c.SampleRatio, 0), "redact", c.Redact,
		"queue_size", c.QueueSize, "batch_size", c.BatchSize)
	return e, nil
}

// redactedURL hides a password in an endpoint URL before it is logged.
func redactedURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// NewWithClient is New with a given OTLP client instead of the one
// cfg.Protocol selects (tests capture what would go on the wire). The
// endpoint, TLS and compression fields of cfg are checked but unused. The
// Exporter starts the client, and stops it in Shutdown.
func NewWithClient(ctx context.Context, cfg Config, version string, client otlptrace.Client, log *slog.Logger) (*Exporter, error) {
	if client == nil {
		return nil, errors.New("tracing: nil OTLP client")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return newExporter(ctx, c, version, client, log)
}

func newExporter(ctx context.Context, c Config, version string, client otlptrace.Client, log *slog.Logger) (*Exporter, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res, err := newResource(c, version, log)
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (crypto/rand since Go 1.24)
	if err := client.Start(ctx); err != nil {
		return nil, fmt.Errorf("tracing: start OTLP client: %w", err)
	}
	e := &Exporter{
		client:        client,
		sampler:       sdktrace.TraceIDRatioBased(max(c.SampleRatio, 0)), // SampleNone → 0
		log:           log,
		batchSize:     c.BatchSize,
		queueSize:     c.QueueSize,
		batchTimeout:  c.BatchTimeout,
		exportTimeout: c.ExportTimeout,
		resource:      &resourcepb.Resource{Attributes: keyValues(res.Iter())},
		resSchema:     res.SchemaURL(),
		scope:         &commonpb.InstrumentationScope{Name: instrumentationScope, Version: version},
		enc:           encoder{redact: c.Redact, rng: rand.NewChaCha8(seed)},
		progress:      make(chan struct{}),
		wake:          make(chan struct{}, 1),
		quit:          make(chan struct{}),
		exited:        make(chan struct{}),
	}
	e.abortCtx, e.abort = context.WithCancel(context.Background())
	e.timer = time.AfterFunc(time.Hour, e.timeout)
	e.timer.Stop()
	go e.run()
	return e, nil
}

// newResource describes this process (docs/tracing.md, "Resource"). The
// monotonic timestamps in the spans are comparable only within one
// host.name and service.instance.id, so both are always set.
func newResource(c Config, version string, log *slog.Logger) (*resource.Resource, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		log.Warn("tracing: no hostname for the trace resource", "err", err)
		host = "unknown"
	}
	attrs := make([]attribute.KeyValue, 0, len(c.ResourceAttributes)+4)
	attrs = append(attrs,
		attribute.String(attrHostName, host),
		attribute.String(attrServiceInstance, host+"/"+strconv.Itoa(os.Getpid())),
	)
	// Later attributes win: configured ones override the two above, and
	// the service name and version override configured ones.
	for k, v := range c.ResourceAttributes {
		attrs = append(attrs, attribute.String(k, v))
	}
	attrs = append(attrs,
		attribute.String(attrServiceName, c.ServiceName),
		attribute.String(attrServiceVersion, version),
	)
	res, err := resource.New(context.Background(),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attrs...),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: trace resource: %w", err)
	}
	return res, nil
}

// keyValues converts resource attributes to OTLP, as the SDK's exporter
// did.
func keyValues(it attribute.Iterator) []*commonpb.KeyValue {
	out := make([]*commonpb.KeyValue, 0, it.Len())
	for it.Next() {
		kv := it.Attribute()
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
	}
	return out
}

func anyValue(v attribute.Value) *commonpb.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.AsString()}}
	}
	// Slices: not produced by this package's resource; keep them readable.
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.String()}}
}

// Sampled reports whether the call with this trace ID is exported: the
// SDK's TraceIDRatioBased decision, the same on every instance. Metrics
// use it so that exemplars only name traces that exist.
func (e *Exporter) Sampled(traceID [16]byte) bool {
	return e.sampler.ShouldSample(sdktrace.SamplingParameters{
		ParentContext: context.Background(), TraceID: trace.TraceID(traceID),
	}).Decision == sdktrace.RecordAndSample
}

// Export writes the spans of one resolved transaction: the transaction
// span, one event per message, one event per ordering violation, one
// child span per queue wait (docs/tracing.md, "Spans"). It encodes them
// into the current batch and never waits for the network: a full batch
// goes to the sender's queue, or is dropped (and counted) when the queue
// is full. It is called from one goroutine (the evidence tracker).
func (e *Exporter) Export(t *evidence.Txn) {
	if e == nil || t == nil || t.Txn == nil || e.closed.Load() {
		return
	}
	tid := TraceID(t.CallID)
	if !e.Sampled(tid) {
		return
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() { // Shutdown took the last batch meanwhile
		return
	}
	b := e.cur
	if b == nil {
		b = e.newBatch()
		e.cur = b
		e.timer.Reset(e.batchTimeout)
	}
	var n int
	b.buf, n = e.enc.appendTxn(b.buf, t, tid)
	b.spans += n
	e.spans.Add(uint64(n))
	if b.spans >= e.batchSize || len(b.buf) >= maxBatchBytes {
		e.handOffLocked()
	}
}

// newBatch takes an emptied batch or makes one. Called with e.mu held.
func (e *Exporter) newBatch() *batch {
	e.qmu.Lock()
	var b *batch
	if n := len(e.free); n > 0 {
		b = e.free[n-1]
		e.free[n-1] = nil
		e.free = e.free[:n-1]
	}
	e.qmu.Unlock()
	if b == nil {
		b = &batch{buf: make([]byte, 0, 64<<10), ss: &tracepb.ScopeSpans{Scope: e.scope}}
		b.req = []*tracepb.ResourceSpans{{
			Resource:   e.resource,
			ScopeSpans: []*tracepb.ScopeSpans{b.ss},
			SchemaUrl:  e.resSchema,
		}}
	}
	b.started = time.Now()
	return b
}

// timeout is the batch timer: it sends the current batch once it is
// BatchTimeout old. A timer that fires late for an earlier batch re-arms
// for the current one.
func (e *Exporter) timeout() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return
	}
	if wait := e.batchTimeout - time.Since(e.cur.started); wait > 0 {
		e.timer.Reset(wait)
		return
	}
	e.handOffLocked()
}

// handOffLocked queues the current batch, or drops it if the queue is
// full. Called with e.mu held.
func (e *Exporter) handOffLocked() {
	b := e.cur
	if b == nil {
		return
	}
	e.cur = nil
	e.timer.Stop()
	if b.spans == 0 || !e.enqueue(b) {
		e.dropBatch(b)
	}
}

// enqueue queues b for the sender unless the queue is full (or the
// sender stopped). An empty queue takes any batch, even one past the
// queue size (a transaction's spans stay together, so a batch can exceed
// BatchSize).
func (e *Exporter) enqueue(b *batch) bool {
	e.qmu.Lock()
	if e.stopped || (e.queued > 0 && e.queued+b.spans > e.queueSize) {
		e.qmu.Unlock()
		return false
	}
	e.seq++
	b.seq = e.seq
	e.queue = append(e.queue, b)
	e.queued += b.spans
	e.qmu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return true
}

// dropBatch counts b's spans as dropped and recycles it.
func (e *Exporter) dropBatch(b *batch) {
	if b.spans > 0 {
		e.dropped.Add(uint64(b.spans))
		e.qmu.Lock()
		logDrop := time.Since(e.lastDrop) >= dropLogEvery
		if logDrop {
			e.lastDrop = time.Now()
		}
		e.qmu.Unlock()
		if logDrop {
			e.log.Warn("tracing: export queue full, dropping spans", "spans", b.spans,
				"dropped_total", e.dropped.Load(), "queue_size", e.queueSize)
		}
	}
	e.recycle(b)
}

// recycle empties b and keeps it for reuse.
func (e *Exporter) recycle(b *batch) {
	b.buf, b.spans, b.seq = b.buf[:0], 0, 0
	e.qmu.Lock()
	if len(e.free) < freeBatches {
		e.free = append(e.free, b)
	}
	e.qmu.Unlock()
}

// run is the sender goroutine: it uploads queued batches one at a time
// until quit is closed and the queue is empty.
func (e *Exporter) run() {
	defer close(e.exited)
	for {
		e.qmu.Lock()
		for len(e.queue) == 0 {
			e.qmu.Unlock()
			select {
			case <-e.wake:
			case <-e.quit:
				e.qmu.Lock()
				empty := len(e.queue) == 0
				e.qmu.Unlock()
				if empty {
					return
				}
			}
			e.qmu.Lock()
		}
		b := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		e.queued -= b.spans
		e.qmu.Unlock()

		e.upload(b)

		e.qmu.Lock()
		e.done = max(e.done, b.seq) // Shutdown may have given up on later ones
		close(e.progress)
		e.progress = make(chan struct{})
		e.qmu.Unlock()
		e.recycle(b)
	}
}

// upload sends one batch through the OTLP client and counts the outcome.
func (e *Exporter) upload(b *batch) {
	ctx, cancel := context.WithTimeout(e.abortCtx, e.exportTimeout)
	b.ss.ProtoReflect().SetUnknown(protoreflect.RawFields(b.buf))
	err := e.client.UploadTraces(ctx, b.req)
	b.ss.ProtoReflect().SetUnknown(nil)
	cancel()

	n := uint64(b.spans)
	e.fmu.Lock()
	defer e.fmu.Unlock()
	if err == nil {
		e.exported.Add(n)
		if e.failing {
			e.log.Info("tracing: span export recovered", "lost", e.lost)
			e.failing, e.lost = false, 0
		}
		return
	}
	e.failed.Add(n)
	e.lost += n
	e.lastErr = err
	if !e.failing {
		e.failing = true
		e.log.Warn("tracing: span export failing; spans are lost until it recovers", "err", err, "spans", n)
	}
}

// Stats returns the span counters. Safe for concurrent use.
func (e *Exporter) Stats() Stats {
	if e == nil {
		return Stats{}
	}
	return Stats{
		Spans:        e.spans.Load(),
		Exported:     e.exported.Load(),
		ExportFailed: e.failed.Load(),
		Dropped:      e.dropped.Load(),
	}
}

// ForceFlush sends the current batch and waits until every span encoded
// so far has been uploaded. It fails if ctx ends first, or if spans were
// lost to export errors or dropped meanwhile.
func (e *Exporter) ForceFlush(ctx context.Context) error {
	if e == nil {
		return nil
	}
	failed, dropped := e.failed.Load(), e.dropped.Load()
	if err := e.flush(ctx); err != nil {
		return fmt.Errorf("tracing: flush: %w", err)
	}
	return e.lostSince(failed, dropped, "flush")
}

// flush queues the current batch, waiting for room in the queue rather
// than dropping it, and waits until the sender has finished everything
// queued up to then.
func (e *Exporter) flush(ctx context.Context) error {
	e.mu.Lock()
	b := e.cur
	e.cur = nil
	e.timer.Stop()
	e.mu.Unlock()
	for b != nil {
		if b.spans == 0 {
			e.recycle(b)
			break
		}
		if e.enqueue(b) {
			break
		}
		e.qmu.Lock()
		ch, stopped := e.progress, e.stopped
		e.qmu.Unlock()
		if stopped {
			e.dropBatch(b)
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			e.dropBatch(b)
			return ctx.Err()
		}
	}
	e.qmu.Lock()
	target := e.seq
	for e.done < target {
		ch := e.progress
		e.qmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		e.qmu.Lock()
	}
	e.qmu.Unlock()
	return nil
}

// Shutdown flushes every span and stops the exporter and its OTLP client.
// Call it after the last Export has returned; Export does nothing
// afterwards. If ctx ends first, the upload in flight is cancelled and
// the spans still queued are counted as dropped.
func (e *Exporter) Shutdown(ctx context.Context) error {
	if e == nil || e.closed.Swap(true) {
		return nil
	}
	failed, dropped := e.failed.Load(), e.dropped.Load()
	ferr := e.flush(ctx)

	e.qmu.Lock()
	e.stopped = true
	if ferr != nil { // out of time: give up on the queue
		for i, b := range e.queue {
			e.dropped.Add(uint64(b.spans))
			e.done = max(e.done, b.seq)
			e.queue[i] = nil
		}
		e.queue, e.queued = e.queue[:0], 0
		e.abort()
	}
	e.qmu.Unlock()
	close(e.quit)
	<-e.exited
	e.abort()

	var errs []error
	if ferr != nil {
		errs = append(errs, fmt.Errorf("tracing: shutdown: %w", ferr))
	}
	if err := e.client.Stop(ctx); err != nil && ferr == nil {
		errs = append(errs, fmt.Errorf("tracing: shutdown: stop OTLP client: %w", err))
	}
	if e.closeIdle != nil {
		e.closeIdle()
	}
	if err := e.lostSince(failed, dropped, "shutdown"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// lostSince reports spans lost since the counters were failed and
// dropped.
func (e *Exporter) lostSince(failed, dropped uint64, op string) error {
	var errs []error
	if n := e.failed.Load() - failed; n > 0 {
		e.fmu.Lock()
		err := e.lastErr
		e.fmu.Unlock()
		errs = append(errs, fmt.Errorf("tracing: %s: %d spans lost to export errors: %w", op, n, err))
	}
	if n := e.dropped.Load() - dropped; n > 0 {
		errs = append(errs, fmt.Errorf("tracing: %s: %d spans dropped (export queue full, or shutdown out of time)", op, n))
	}
	return errors.Join(errs...)
}
