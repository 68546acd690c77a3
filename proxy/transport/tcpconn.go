package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sipvigil/proxy/observe"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// tcpReadBuf is the per-connection read chunk. The stream parser keeps
	// its own buffer, so this only sets the syscall granularity; keeping it
	// small keeps thousands of idle connections cheap.
	tcpReadBuf = 8 << 10
	// tcpMaxBatch bounds how many queued messages one writev carries.
	tcpMaxBatch = 64
	// tcpKeepCap is the queue capacity kept after a burst; larger backing
	// arrays are released so a past burst does not pin memory.
	tcpKeepCap = 64
)

var errIdle = errors.New("tcp idle timeout")

// outItem is one queued write.
type outItem struct {
	data      []byte
	onError   func(error)
	keepalive bool           // RFC 5626 pong: not counted as a SIP message
	id        uint64         // Outbound.PacketID
	stamp     *observe.Stamp // Outbound.Stamp
}

// tcpConn is one TCP connection, inbound or outbound. It has exactly one
// reader goroutine (parse + HandleInbound in order) and exactly one writer
// goroutine draining a bounded FIFO, so bytes leave in Send-call order.
type tcpConn struct {
	t        *Transport
	readMono int64 // CLOCK_MONOTONIC of the last read; reader goroutine only
	id       uint64
	remote   netip.AddrPort
	outbound bool
	dialFrom netip.AddrPort // outbound only

	// local is set before the reader starts and read only by it.
	local netip.AddrPort

	lastActive atomic.Int64  // unix nanos of the last read or write
	closed     atomic.Bool   // set under mu; read lock-free by lookups
	done       chan struct{} // closed by close()
	// wake has room for one token: "the queue became non-empty". A
	// slice queue rather than a buffered channel of TCPQueueLen, because a
	// channel allocates its whole buffer up front for every idle connection.
	wake chan struct{}

	mu    sync.Mutex   // guards everything below, and orders enqueue against close
	nc    *net.TCPConn // nil while an outbound dial is in flight
	queue []outItem    // FIFO, at most TCPQueueLen
	spare []outItem    // the writer's previous batch slice, reused

	fr framer // reader goroutine only
}

func (t *Transport) newConn(remote netip.AddrPort, outbound bool) *tcpConn {
	c := &tcpConn{
		t:        t,
		id:       t.conns.nextID.Add(1),
		remote:   remote,
		outbound: outbound,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
	c.lastActive.Store(time.Now().UnixNano())
	return c
}

// enqueue adds it to the writer queue without blocking.
func (c *tcpConn) enqueue(it outItem) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return errConnClosed
	}
	if len(c.queue) >= c.t.cfg.TCPQueueLen {
		return errQueueFull
	}
	c.queue = append(c.queue, it)
	if len(c.queue) == 1 {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// take removes up to max queued items, oldest first, into a reused slice.
func (c *tcpConn) take(max int) []outItem {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), max)
	batch := append(c.spare[:0], c.queue[:n]...)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	if rest == 0 && cap(c.queue) > tcpKeepCap {
		c.queue = nil
	}
	c.spare = nil
	return batch
}

// giveBack returns the batch slice for reuse once written.
func (c *tcpConn) giveBack(batch []outItem) {
	clear(batch) // drop references: Data is not retained after the write
	if cap(batch) > tcpKeepCap {
		return
	}
	c.mu.Lock()
	c.spare = batch[:0]
	c.mu.Unlock()
}

// close shuts the connection once. Because closed is set under mu, no
// enqueue can succeed afterwards, so the writer's final drain sees every
// message that will ever be queued and can fail each one via OnError.
func (c *tcpConn) close(cause error) {
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return
	}
	c.closed.Store(true)
	nc := c.nc
	c.mu.Unlock()
	close(c.done)
	if nc != nil {
		_ = nc.Close()
	}
	c.t.conns.remove(c)
	c.t.counters.tcpOpen.Add(-1)
	c.t.log.Debug("tcp connection closed", "conn", c.id, "remote", c.remote, "outbound", c.outbound, "cause", cause)
}

// attach installs a dialed socket unless the connection was closed while
// dialing (shutdown), in which case the socket is closed.
func (c *tcpConn) attach(nc *net.TCPConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		_ = nc.Close()
		return false
	}
	c.nc = nc
	c.local = unmap(addrPortOf(nc.LocalAddr()))
	return true
}

// failQueued reports every message still queued as failed. Called after
// close, when no enqueue can succeed any more.
func (c *tcpConn) failQueued(err error) {
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, it := range q {
		c.fail(it, err)
	}
}

func (c *tcpConn) fail(it outItem, err error) {
	if it.keepalive {
		return
	}
	c.t.counters.tcp.sendErrors.Add(1)
	if it.onError != nil {
		it.onError(fmt.Errorf("tcp send to %s (conn %d): %w", c.remote, c.id, err))
	}
}

// writeLoop dials (outbound connections), starts the reader, then writes
// queued messages in FIFO order, batching whatever is already queued into
// one writev.
func (c *tcpConn) writeLoop() {
	t := c.t
	defer t.wg.Done()
	if c.outbound {
		nc, err := c.dial()
		if err != nil {
			if t.ctx.Err() != nil {
				err = ErrClosed
			} else {
				t.counters.tcpDialFailures.Add(1)
				t.log.Debug("tcp dial failed", "conn", c.id, "remote", c.remote, "err", err)
			}
			c.close(err)
			c.failQueued(err)
			return
		}
		if !c.attach(nc) {
			c.failQueued(ErrClosed)
			return
		}
		t.counters.tcpDialed.Add(1)
		c.lastActive.Store(time.Now().UnixNano())
		t.wg.Add(1) // safe: this goroutine's own count keeps wg above zero
		go c.readLoop()
	}
	bufs := make(net.Buffers, 0, tcpMaxBatch)
	for {
		select {
		case <-c.done:
			c.failQueued(errConnClosed)
			return
		case <-c.wake:
		}
		for {
			items := c.take(tcpMaxBatch)
			if len(items) == 0 {
				break
			}
			if err := c.write(items, bufs); err != nil {
				c.close(err)
				for _, it := range items {
					c.fail(it, err)
				}
				c.failQueued(errConnClosed)
				return
			}
			c.giveBack(items)
		}
	}
}

// write sends items with one writev under the write deadline.
func (c *tcpConn) write(items []outItem, bufs net.Buffers) error {
	bufs = bufs[:0]
	for _, it := range items {
		bufs = append(bufs, it.data)
	}
	full := bufs
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.t.cfg.TCPWriteTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	var mono int64
	if c.t.obs != nil {
		mono = observe.Monotonic()
	}
	_, err := bufs.WriteTo(c.nc) // consumes bufs, not full
	clear(full)
	if err != nil {
		return fmt.Errorf("tcp write to %s: %w", c.remote, err)
	}
	c.lastActive.Store(time.Now().UnixNano())
	pc := &c.t.counters.tcp
	for _, it := range items {
		if !it.keepalive {
			if c.t.obs != nil {
				c.t.obs.Packet(observe.Packet{ID: it.id, Stamp: it.stamp, Dir: observe.Out, Proto: observe.ProtoTCP,
					Local: c.local, Remote: c.remote, ConnID: c.id, Data: it.data, Mono: mono})
			}
			pc.sent.Add(1)
			pc.sentBytes.Add(uint64(len(it.data)))
		}
	}
	return nil
}

// readLoop is the connection's only reader. Idle detection uses a read
// deadline that is re-armed only when it fires, from the last read or write
// time, so busy connections pay no per-read timer cost.
func (c *tcpConn) readLoop() {
	t := c.t
	defer t.wg.Done()
	c.fr.init(t.cfg.MaxMessageSize)
	defer c.fr.close()
	idle := t.cfg.TCPIdleTimeout
	buf := make([]byte, tcpReadBuf)
	if err := c.nc.SetReadDeadline(time.Now().Add(idle)); err != nil {
		c.close(fmt.Errorf("set read deadline: %w", err))
		return
	}
	for {
		n, err := c.nc.Read(buf)
		if t.obs != nil || t.cfg.PacketIDs {
			c.readMono = observe.Monotonic()
		}
		now := time.Now()
		if n > 0 {
			c.lastActive.Store(now.UnixNano())
			if !c.feed(buf[:n], now) {
				return
			}
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			last := time.Unix(0, c.lastActive.Load())
			if now.Sub(last) >= idle {
				t.counters.tcpIdleClosed.Add(1)
				c.close(errIdle)
				return
			}
			if err := c.nc.SetReadDeadline(last.Add(idle)); err != nil {
				c.close(fmt.Errorf("set read deadline: %w", err))
				return
			}
			continue
		}
		if c.fr.midMessage() && !c.closed.Load() {
			t.bad(TCP, c.local, c.remote, ReasonTruncated,
				fmt.Errorf("tcp %s closed in the middle of a message: %w", c.remote, err))
		}
		c.close(err)
		return
	}
}

// feed runs the framer over one read chunk, delivering each complete
// message inline. It returns false when the connection was closed.
func (c *tcpConn) feed(data []byte, now time.Time) bool {
	t := c.t
	err := c.fr.feed(data,
		func() {
			if c.enqueue(outItem{data: []byte("\r\n"), keepalive: true}) == nil {
				t.counters.tcpPongs.Add(1)
			}
		},
		func(f frame) {
			f.msg.SetTransport("TCP")
			f.msg.SetSource(c.remote.String())
			pc := &t.counters.tcp
			pc.received.Add(1)
			pc.receivedBytes.Add(uint64(f.size))
			id, stamp := t.number()
			if t.obs != nil {
				t.obs.Packet(observe.Packet{ID: id, Stamp: stamp, Dir: observe.In, Proto: observe.ProtoTCP,
					Local: c.local, Remote: c.remote, ConnID: c.id, Data: f.raw, Mono: c.readMono})
			}
			t.h.HandleInbound(Inbound{
				Msg: f.msg, Proto: TCP, Local: c.local, Remote: c.remote,
				ConnID: c.id, Size: f.size, Received: now, PacketID: id, Mono: c.readMono, Stamp: stamp,
			})
		})
	if err == nil {
		return true
	}
	var fe *frameError
	reason := ReasonFraming
	if errors.As(err, &fe) {
		reason = fe.reason
	}
	t.bad(TCP, c.local, c.remote, reason, fmt.Errorf("tcp %s (conn %d): %w", c.remote, c.id, err))
	c.close(err)
	return false
}
