package lookup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sipvigil/proxy/config"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout     = time.Second
	DefaultConcurrency = 16
	DefaultQueueSize   = 1024
)

// MaxBodySize is the largest response body accepted from the endpoint. A
// route answer is a few hundred bytes; the cap keeps a misbehaving service
// from making a pool goroutine buffer megabytes.
const MaxBodySize = 64 << 10

// Outcome labels of Result.Outcome: a fixed set, safe as a metric label.
const (
	OutcomeOK       = "ok"       // Hops set, from the endpoint
	OutcomeReply    = "reply"    // Reply set, from the endpoint
	OutcomeTimeout  = "timeout"  // Reply is OnTimeout
	OutcomeError    = "error"    // Reply is OnError
	OutcomeOverflow = "overflow" // Reply is OnError; see OverflowResult
)

// Reply is a SIP final response to send instead of routing.
type Reply struct {
	Code   int
	Reason string
}

// Config configures one lookup Client. Zero values take the defaults.
type Config struct {
	// Name identifies the client in logs and metrics; required.
	Name string
	// LogCallID, if set, is how a Call-ID appears in logs (tracing.redact:
	// hashed or dropped); nil logs it as is. The endpoint still gets the
	// real one: routing may depend on it.
	LogCallID func(string) string
	// URL is the endpoint template, http:// or https://. The placeholders
	// {method} {ruri} {user} {host} {from} {to} {callid} {source} are
	// replaced with URL-query-escaped values from the Request (names are
	// case-insensitive; an unknown one is an error).
	URL string
	// Timeout bounds the whole request including reading the body
	// (default 1s). It does not include the time spent in the queue.
	Timeout time.Duration
	// Concurrency is the number of pool goroutines, that is the maximum
	// number of HTTP requests in flight (default 16).
	Concurrency int
	// QueueSize is the number of lookups that may wait for a pool
	// goroutine (default 1024); when it is full Lookup returns false.
	QueueSize int
	// OnTimeout is answered when the endpoint does not answer within
	// Timeout (default 504 Route Lookup Timeout).
	OnTimeout Reply
	// OnError is answered on a transport error, a non-2xx status, a bad
	// body or a bad hop, and for lookups cut short by shutdown (default
	// 500 Route Lookup Failed).
	OnError Reply
	// MaxWait, when positive, bounds the time a lookup may wait in the
	// queue: a lookup that waited longer when a pool goroutine takes it
	// completes with OnTimeout without sending a request. Without it a
	// backlog behind a slow endpoint can hold calls for up to
	// QueueSize/Concurrency*Timeout, long after the caller gave up
	// (default 0: no limit).
	MaxWait time.Duration
	// MaxIdleConnsPerHost is the number of idle keep-alive connections
	// kept to the endpoint (default Concurrency).
	MaxIdleConnsPerHost int
}

// Request carries the values the URL template may use. Fields are plain
// strings, copied into the queue, so the caller may reuse its buffers as
// soon as Lookup returns.
type Request struct {
	Method string
	RURI   string
	User   string
	Host   string
	From   string
	To     string
	CallID string
	Source string
}

// Result is the answer to one lookup: exactly one of Hops or Reply is set.
type Result struct {
	// Hops to route to, in failover order; each was parsed with
	// config.ParseHopLiteral, so Addr is filled and no DNS is needed.
	Hops []config.Hop
	// Reply to send instead of routing: from the endpoint (Outcome
	// "reply") or the configured OnTimeout/OnError.
	Reply *Reply
	// Outcome is one of the Outcome* labels.
	Outcome string
	// Err is the cause of a "timeout", "error" or "overflow" outcome, for
	// logs; it names the client and the URL.
	Err error
	// Elapsed is the time from Lookup to the Result, queueing included:
	// how long the transaction was suspended.
	Elapsed time.Duration
	// Wait is the part of Elapsed spent in the queue before a pool
	// goroutine took the lookup.
	Wait time.Duration
}

// job is one queued lookup.
type job struct {
	req  Request
	done func(Result)
	enq  time.Time
}

// Client performs route lookups on a fixed pool of goroutines. It is safe
// for concurrent use; create it with New and start it with Run.
type Client struct {
	name      string
	tmpl      urlTemplate
	timeout   time.Duration
	maxWait   time.Duration
	conc      int
	onTimeout Reply
	onError   Reply
	log       *slog.Logger
	logCallID func(string) string
	http      *http.Client
	transport *http.Transport

	queue chan job

	// mu orders Lookup's enqueue against Run's shutdown: once stopped is
	// set under the write lock no Lookup can add to the queue, so the
	// drain after it sees every accepted lookup. Lookup takes the read
	// lock, which without a pending shutdown is a single atomic add and
	// never waits.
	mu      sync.RWMutex
	stopped bool
	started atomic.Bool

	stats counters
}

// New validates cfg and builds a Client. It starts nothing; call Run.
func New(cfg Config, log *slog.Logger) (*Client, error) {
	if cfg.Name == "" {
		return nil, errors.New("lookup: name is required")
	}
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("lookup %s: %s", cfg.Name, fmt.Sprintf(format, args...))
	}
	tmpl, err := parseTemplate(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", cfg.Name, err)
	}
	switch {
	case cfg.Timeout < 0:
		return nil, errorf("timeout must not be negative, got %v", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.Concurrency < 0:
		return nil, errorf("concurrency must not be negative, got %d", cfg.Concurrency)
	case cfg.Concurrency == 0:
		cfg.Concurrency = DefaultConcurrency
	}
	switch {
	case cfg.QueueSize < 0:
		return nil, errorf("queue size must not be negative, got %d", cfg.QueueSize)
	case cfg.QueueSize == 0:
		cfg.QueueSize = DefaultQueueSize
	}
	switch {
	case cfg.MaxIdleConnsPerHost < 0:
		return nil, errorf("max idle connections per host must not be negative, got %d", cfg.MaxIdleConnsPerHost)
	case cfg.MaxIdleConnsPerHost == 0:
		cfg.MaxIdleConnsPerHost = cfg.Concurrency
	}
	if cfg.MaxWait < 0 {
		return nil, errorf("max wait must not be negative, got %v", cfg.MaxWait)
	}
	if cfg.OnTimeout, err = replyOrDefault(cfg.OnTimeout, Reply{504, "Route Lookup Timeout"}); err != nil {
		return nil, errorf("on_timeout: %v", err)
	}
	if cfg.OnError, err = replyOrDefault(cfg.OnError, Reply{500, "Route Lookup Failed"}); err != nil {
		return nil, errorf("on_error: %v", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	dialer := &net.Dialer{
		// The connect must fit in the lookup's Timeout; the request
		// context bounds it too, this only covers dials the transport
		// starts on its own.
		Timeout:   cfg.Timeout,
		KeepAlive: 30 * time.Second,
	}
	// HTTP/1.1 only: one connection per pool goroutine, see the package doc.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	tr := &http.Transport{
		Proxy:               nil, // ignore HTTP_PROXY & co., see the package doc
		DialContext:         dialer.DialContext,
		Protocols:           protocols,
		MaxIdleConns:        cfg.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost: cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: cfg.Timeout,
		// Bounded by the request context already; set so a header
		// that never comes cannot outlive Timeout even if a future
		// change loses the context.
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxResponseHeaderBytes: MaxBodySize,
	}
	c := &Client{
		name:      cfg.Name,
		tmpl:      tmpl,
		timeout:   cfg.Timeout,
		maxWait:   cfg.MaxWait,
		conc:      cfg.Concurrency,
		onTimeout: cfg.OnTimeout,
		onError:   cfg.OnError,
		log:       log.With("lookup", cfg.Name),
		logCallID: cfg.LogCallID,
		transport: tr,
		// The per-request context carries the deadline; Client.Timeout
		// stays 0 so a timeout is always reported the same way.
		http:  &http.Client{Transport: tr},
		queue: make(chan job, cfg.QueueSize),
	}
	return c, nil
}

// replyOrDefault returns def for the zero Reply and validates anything
// else: the reply becomes a SIP status line.
func replyOrDefault(r, def Reply) (Reply, error) {
	if r == (Reply{}) {
		return def, nil
	}
	if r.Code < 300 || r.Code > 699 {
		return Reply{}, fmt.Errorf("code must be between 300 and 699, got %d", r.Code)
	}
	if r.Reason == "" {
		r.Reason = reasonPhrase(r.Code)
	}
	if err := checkReason(r.Reason); err != nil {
		return Reply{}, err
	}
	return r, nil
}

// checkReason rejects control characters: a CR or LF in a reason phrase
// would let the lookup service inject header lines into the SIP response.
func checkReason(s string) error {
	if len(s) > 256 {
		return errors.New("reason is longer than 256 bytes")
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return fmt.Errorf("reason %q contains a control character", s)
	}
	return nil
}

// Name returns the configured name.
func (c *Client) Name() string { return c.name }

// Run starts the pool goroutines and blocks until ctx is done. It then
// cancels the requests in flight (they complete with OnError), waits for
// the pool to finish, and completes every lookup still queued with
// OnError, so no suspended transaction is left waiting. After Run returns
// Lookup returns false. Run may be called once.
func (c *Client) Run(ctx context.Context) {
	if !c.started.CompareAndSwap(false, true) {
		c.log.Error("lookup: Run called twice; ignoring the second call")
		return
	}
	c.log.Info("route lookup client started", "url", c.tmpl.String(), "concurrency", c.conc, "queue", cap(c.queue), "timeout", c.timeout)

	var wg sync.WaitGroup
	for range c.conc {
		wg.Go(func() { c.pool(ctx) })
	}
	<-ctx.Done()

	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	wg.Wait()

	// No Lookup can enqueue any more and no pool goroutine is left, so
	// this sees every remaining lookup exactly once.
	drained := 0
drain:
	for {
		select {
		case j := <-c.queue:
			c.stats.queued.Add(-1)
			c.finish(j, time.Now(), c.stoppedResult(ctx))
			drained++
		default:
			break drain
		}
	}
	c.transport.CloseIdleConnections()
	c.log.Info("route lookup client stopped", "drained", drained)
}

// Lookup queues a lookup without blocking. done is called exactly once
// with the Result, from a pool goroutine (or, for lookups still queued at
// shutdown, from the goroutine running Run); it must return quickly,
// typically by handing the Result to the worker that owns the
// transaction, because the pool goroutine waits for it.
//
// Lookup returns false, and does not call done, when the queue is full or
// the client has stopped; the caller then answers itself, for example
// with OverflowResult. Lookups queued before Run starts are served once
// it does.
func (c *Client) Lookup(req Request, done func(Result)) bool {
	if done == nil {
		panic("lookup: Lookup called with a nil done callback")
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.stopped {
		c.stats.overflows.Add(1)
		return false
	}
	// Count before the send: a pool goroutine may take the job and
	// decrement before this goroutine runs again.
	c.stats.queued.Add(1)
	c.stats.requests.Add(1)
	select {
	case c.queue <- job{req: req, done: done, enq: time.Now()}:
		return true
	default:
		c.stats.queued.Add(-1)
		c.stats.requests.Add(^uint64(0)) // -1: counted only if accepted
		c.stats.overflows.Add(1)
		return false
	}
}

// OverflowResult is the Result for a lookup that Lookup refused: the
// OnError reply with Outcome "overflow". It lets the caller handle a
// refused lookup on the same code path as a failed one.
func (c *Client) OverflowResult() Result {
	return Result{
		Reply:   &Reply{Code: c.onError.Code, Reason: c.onError.Reason},
		Outcome: OutcomeOverflow,
		Err:     fmt.Errorf("lookup %s: queue full or client stopped", c.name),
	}
}

// pool is one pool goroutine: it serves queued lookups until ctx is done.
func (c *Client) pool(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-c.queue:
			c.stats.queued.Add(-1)
			start := time.Now()
			if ctx.Err() != nil {
				// select picks at random among ready cases; a
				// lookup taken after shutdown is not sent.
				c.finish(j, start, c.stoppedResult(ctx))
				return
			}
			if wait := start.Sub(j.enq); c.maxWait > 0 && wait > c.maxWait {
				c.finish(j, start, c.failed(OutcomeTimeout, fmt.Errorf("lookup %s: waited %v in the queue, over the max wait of %v; request not sent", c.name, wait.Round(time.Millisecond), c.maxWait)))
				continue
			}
			c.stats.inFlight.Add(1)
			res := c.do(ctx, j.req)
			c.stats.inFlight.Add(-1)
			c.finish(j, start, res)
		}
	}
}

// stoppedResult is the Result for a lookup that shutdown kept from being
// sent.
func (c *Client) stoppedResult(ctx context.Context) Result {
	return c.failed(OutcomeError, fmt.Errorf("lookup %s: stopped before the request was sent: %w", c.name, context.Cause(ctx)))
}

// failed builds the Result for a timeout or error outcome.
func (c *Client) failed(outcome string, err error) Result {
	r := c.onError
	if outcome == OutcomeTimeout {
		r = c.onTimeout
	}
	return Result{Reply: &r, Outcome: outcome, Err: err}
}

// finish stamps the timings, counts the outcome and delivers res.
func (c *Client) finish(j job, start time.Time, res Result) {
	now := time.Now()
	res.Elapsed = now.Sub(j.enq)
	res.Wait = start.Sub(j.enq)
	c.stats.record(res.Outcome, res.Elapsed)
	if res.Err != nil {
		// Debug only: the caller logs the Result with the call's
		// context, and an endpoint outage must not flood the log.
		callID := j.req.CallID
		if c.logCallID != nil {
			callID = c.logCallID(callID)
		}
		c.log.Debug("route lookup failed", "outcome", res.Outcome, "callid", callID, "elapsed", res.Elapsed, "err", res.Err)
	}
	j.done(res)
}
