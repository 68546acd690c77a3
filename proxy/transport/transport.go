package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sipvigil/proxy/observe"
	"sync"
	"sync/atomic"
	"syscall"
)

// ErrClosed is returned by Send and Serve after the transport shut down.
var ErrClosed = errors.New("transport closed")

// Transport owns every socket of the proxy. Create it with New, run it with
// Serve, send with Send from any goroutine.
type Transport struct {
	cfg      Config
	h        Handler
	log      *slog.Logger
	obs      observe.Observer
	counters counters
	// packetIDs numbers inbound messages while something observes; the
	// values stay below 1<<63, the space callers use for Outbound.PacketID.
	packetIDs atomic.Uint64

	udp       []*udpGroup
	udpByAddr map[netip.AddrPort]*udpGroup
	tcp       []*tcpListener
	buffers   []BufferSize
	conns     connTable

	// ctx is cancelled on shutdown; it aborts outbound dials in flight.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex // guards serving and closed
	serving bool
	closed  bool
	wg      sync.WaitGroup
}

// New binds every socket now, so "address in use" surfaces at startup
// rather than when the first message is due. UDP sockets get SO_REUSEPORT
// (when UDPSockets > 1), SO_RCVBUF and SO_SNDBUF; TCP sockets keep the
// kernel's buffer autotuning, since a fixed SO_RCVBUF would disable it and
// TCP's flow control does not drop under bursts the way UDP does.
func New(cfg Config, h Handler) (*Transport, error) {
	if h == nil {
		return nil, errors.New("transport: nil handler")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("transport config: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:       cfg,
		h:         h,
		log:       cfg.Logger,
		obs:       cfg.Observer,
		udpByAddr: make(map[netip.AddrPort]*udpGroup),
		ctx:       ctx,
		cancel:    cancel,
	}
	t.conns.init()
	for _, l := range cfg.Listen {
		if err := t.bindListen(unmap(l.Addr), l.UDP, l.TCP); err != nil {
			t.closeSockets()
			cancel()
			return nil, err
		}
	}
	return t, nil
}

// bindListen binds one Listen entry. When both transports share port 0 it
// gives TCP the port UDP got, retrying a few times if that port is taken
// for TCP, so the address advertised in Via works for both.
func (t *Transport) bindListen(addr netip.AddrPort, wantUDP, wantTCP bool) error {
	const attempts = 5
	for attempt := 1; ; attempt++ {
		var g *udpGroup
		port := addr.Port()
		if wantUDP {
			var err error
			if g, err = bindUDP(t.ctx, addr, t.cfg.UDPSockets); err != nil {
				return err
			}
			port = g.addr.Port()
		}
		var tl *tcpListener
		if wantTCP {
			var err error
			tl, err = listenTCP(t.ctx, netip.AddrPortFrom(addr.Addr(), port))
			if err != nil {
				if g != nil {
					g.close()
				}
				if g != nil && addr.Port() == 0 && attempt < attempts && errors.Is(err, syscall.EADDRINUSE) {
					continue
				}
				return err
			}
		}
		if g != nil {
			bs, err := tuneBuffers(g, t.cfg.RecvBuffer, t.cfg.SendBuffer, t.log)
			if err != nil {
				g.close()
				if tl != nil {
					_ = tl.ln.Close()
				}
				return err
			}
			t.buffers = append(t.buffers, bs)
			t.udp = append(t.udp, g)
			t.udpByAddr[g.addr] = g
		}
		if tl != nil {
			t.tcp = append(t.tcp, tl)
		}
		return nil
	}
}

// LocalAddrs returns the addresses actually bound, one entry per address,
// with ports resolved when the configured port was 0.
func (t *Transport) LocalAddrs() []Listen {
	var out []Listen
	idx := make(map[netip.AddrPort]int)
	add := func(a netip.AddrPort, udp bool) {
		i, ok := idx[a]
		if !ok {
			i = len(out)
			idx[a] = i
			out = append(out, Listen{Addr: a})
		}
		if udp {
			out[i].UDP = true
		} else {
			out[i].TCP = true
		}
	}
	for _, g := range t.udp {
		add(g.addr, true)
	}
	for _, l := range t.tcp {
		add(l.addr, false)
	}
	return out
}

// UDPSockets returns the number of reuseport sockets per UDP address.
func (t *Transport) UDPSockets() int { return t.cfg.UDPSockets }

// Serve starts the readers (one goroutine per UDP socket; one accept loop
// per TCP listener, each connection getting its own reader) and blocks until
// ctx is done or Close is called. It then closes everything and waits for
// every goroutine it and Send started. It returns nil on a normal shutdown.
func (t *Transport) Serve(ctx context.Context) error {
	t.mu.Lock()
	switch {
	case t.closed:
		t.mu.Unlock()
		return ErrClosed
	case t.serving:
		t.mu.Unlock()
		return errors.New("transport: Serve called twice")
	}
	t.serving = true
	for _, g := range t.udp {
		for i := range g.conns {
			t.wg.Add(1)
			go t.readUDP(g, i)
		}
	}
	for _, l := range t.tcp {
		t.wg.Add(1)
		go t.acceptLoop(l)
	}
	t.mu.Unlock()

	select {
	case <-ctx.Done():
	case <-t.ctx.Done():
	}
	t.Close()
	return nil
}

// Close shuts the transport down: sockets, listeners and connections are
// closed, queued TCP messages fail via OnError, and it waits for all
// goroutines. It is safe to call more than once and without Serve.
func (t *Transport) Close() {
	t.mu.Lock()
	first := !t.closed
	t.closed = true
	t.mu.Unlock()
	if first {
		t.cancel()
		t.closeSockets()
		t.conns.closeAll(ErrClosed)
	}
	t.wg.Wait()
}

func (t *Transport) closeSockets() {
	for _, g := range t.udp {
		g.close()
	}
	for _, l := range t.tcp {
		_ = l.ln.Close()
	}
}

// Send hands one message to the network without blocking on it. UDP is a
// single sendto whose error is returned. TCP queues onto a connection's
// writer (see sendTCP); later failures are reported through OnError.
func (t *Transport) Send(out Outbound) error {
	switch out.Proto {
	case UDP:
		return t.sendUDP(out)
	case TCP:
		return t.sendTCP(out)
	default:
		return fmt.Errorf("send to %s: invalid proto %s", out.To, out.Proto)
	}
}

// bad counts and reports unparseable input.
func (t *Transport) bad(p Proto, local, remote netip.AddrPort, reason string, err error) {
	t.counters.proto(p).bad[reasonIndex(reason)].Add(1)
	t.h.HandleBad(p, local, remote, reason, err)
}

// isClosedErr reports errors that mean "we closed this socket ourselves".
func isClosedErr(err error) bool { return errors.Is(err, net.ErrClosed) }

// number returns the ID and the kernel-stamp slot of an inbound message.
// IDs exist only for the workers' transaction records (PacketIDs), and a
// stamp slot only when, in addition, an observer (the eBPF matcher) can
// fill it; otherwise both are zero and the message costs no atomic add and
// no allocation.
func (t *Transport) number() (id uint64, stamp *observe.Stamp) {
	if !t.cfg.PacketIDs {
		return 0, nil
	}
	id = t.packetIDs.Add(1)
	if t.obs != nil {
		stamp = new(observe.Stamp)
	}
	return id, stamp
}
