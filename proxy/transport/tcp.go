package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// tcpListener is one bound TCP listening socket.
type tcpListener struct {
	addr netip.AddrPort // configured IP with the actual bound port
	ln   *net.TCPListener
}

// listenTCP binds a TCP listener. No SO_REUSEPORT here: a second process on
// the same port must fail loudly, and one accept loop is plenty.
func listenTCP(ctx context.Context, addr netip.AddrPort) (*tcpListener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network("tcp", addr.Addr()), addr.String())
	if err != nil {
		return nil, fmt.Errorf("tcp listen %s: %w", addr, err)
	}
	tl := ln.(*net.TCPListener)
	port := tl.Addr().(*net.TCPAddr).AddrPort().Port()
	return &tcpListener{addr: netip.AddrPortFrom(addr.Addr(), port), ln: tl}, nil
}

// acceptLoop accepts connections until the listener is closed. Each
// connection gets one reader and one writer goroutine.
func (t *Transport) acceptLoop(l *tcpListener) {
	defer t.wg.Done()
	log := t.log.With("proto", "TCP", "listen", l.addr)
	backoff := time.Duration(0)
	for {
		nc, err := l.ln.AcceptTCP()
		if err != nil {
			if isClosedErr(err) {
				return
			}
			// EMFILE and friends: wait instead of spinning; the pending
			// connection stays in the backlog.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("tcp accept failed", "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		t.counters.tcpAccepted.Add(1)
		c := t.newConn(unmap(addrPortOf(nc.RemoteAddr())), false)
		c.nc = nc
		c.local = unmap(addrPortOf(nc.LocalAddr()))
		if !t.conns.add(c, &t.wg, 2) {
			_ = nc.Close()
			return // shutting down
		}
		t.counters.tcpOpen.Add(1)
		log.Debug("tcp connection accepted", "conn", c.id, "remote", c.remote)
		go c.readLoop()
		go c.writeLoop()
	}
}

// addrPortOf extracts the address of a TCP net.Addr.
func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}

// Errors reported for TCP sends.
var (
	errQueueFull  = errors.New("tcp writer queue full")
	errConnClosed = errors.New("tcp connection closed")
)

// sendTCP queues out on a connection: ConnID if still open, else any open
// connection to To (inbound or outbound: RFC 3261 §18 connection reuse),
// else a new outbound connection that is dialed asynchronously while the
// message waits in its queue. Data is copied so the caller may reuse it.
func (t *Transport) sendTCP(out Outbound) error {
	pc := t.counters.proto(TCP)
	to := unmap(out.To)
	it := outItem{data: bytes.Clone(out.Data), onError: out.OnError, id: out.PacketID, stamp: out.Stamp}
	if out.ConnID != 0 {
		if c := t.conns.byID(out.ConnID); c != nil {
			err := c.enqueue(it)
			if err == nil {
				return nil
			}
			if !errors.Is(err, errConnClosed) {
				// A full queue must not spill onto another connection:
				// that would reorder this peer's messages.
				pc.sendErrors.Add(1)
				return fmt.Errorf("tcp send to %s on conn %d: %w", to, out.ConnID, err)
			}
		}
	}
	if !to.IsValid() {
		pc.sendErrors.Add(1)
		return fmt.Errorf("tcp send: invalid destination %s", to)
	}
	// A connection can die between lookup and enqueue; try a fresh one then,
	// but not forever.
	var err error
	for range 3 {
		var c *tcpConn
		c, err = t.conns.getOrDial(to, func() *tcpConn { return t.newOutbound(unmap(out.From), to) }, &t.wg)
		if err != nil {
			break
		}
		if err = c.enqueue(it); err == nil {
			return nil
		}
		if !errors.Is(err, errConnClosed) {
			break
		}
	}
	pc.sendErrors.Add(1)
	return fmt.Errorf("tcp send to %s: %w", to, err)
}

// newOutbound creates a connection record for a dial that the writer
// goroutine will perform; until then messages queue behind it in order.
func (t *Transport) newOutbound(from, to netip.AddrPort) *tcpConn {
	c := t.newConn(to, true)
	c.dialFrom = from
	t.counters.tcpOpen.Add(1)
	return c
}

// dial connects c, binding From's IP (port 0) so the peer sees the address
// our Via advertises. It runs on c's writer goroutine.
func (c *tcpConn) dial() (*net.TCPConn, error) {
	t := c.t
	d := net.Dialer{Timeout: t.cfg.TCPConnectTimeout}
	if ip := c.dialFrom.Addr(); ip.IsValid() && !ip.IsUnspecified() && ip.Is4() == c.remote.Addr().Is4() {
		d.LocalAddr = &net.TCPAddr{IP: ip.AsSlice(), Zone: ip.Zone()}
	}
	nc, err := d.DialContext(t.ctx, network("tcp", c.remote.Addr()), c.remote.String())
	if err != nil {
		return nil, fmt.Errorf("tcp dial %s: %w", c.remote, err)
	}
	return nc.(*net.TCPConn), nil
}
