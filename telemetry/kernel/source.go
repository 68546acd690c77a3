package kernel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"sipvigil/bpf"
	"sipvigil/proxy/observe"
)

// SourceConfig says what to capture and how to join it.
type SourceConfig struct {
	Interfaces []string // empty: the interfaces owning Listen addresses
	Listen     []netip.AddrPort
	// ExtraPorts are captured too but are not the proxy's own: the ports
	// of configured next hops, so that TCP connections the proxy opens
	// from an ephemeral port to a hop are timestamped as well.
	ExtraPorts  []uint16
	Snaplen     int
	ForceLegacy bool
	RingBytes   int
	TTL         time.Duration
	// Text keeps each matched message's first line, Call-ID and CSeq
	// (Config.Text), for --kernel-dump.
	Text   bool
	Logger *slog.Logger
}

// pollInterval is how often the reader drains the ring buffer. The
// programs never wake it (bpf.WakeupNever) and it never sleeps in a read:
// cilium/ebpf's reader sleeps in a raw epoll_wait, a blocking syscall
// that parks an OS thread and, for up to the whole wait, one of the
// proxy's GOMAXPROCS Ps (the runtime's sysmon takes it back only after a
// delay), and every forced wake-up is an IRQ work item and a self-IPI.
// A Go timer parks only the goroutine. At 5,000 calls/s (70,000 events/s
// on a NIC) 2 ms is ~100 KiB per drain; the proxy's default 32 MiB ring
// (ebpf.ring_buffer) holds about 0.6 s of that, so a drain can be late by
// hundreds of ticks before an event is dropped (and counted).
//
// An idle proxy should not wake 500 times a second: every drain that finds
// the ring empty doubles the wait up to idlePollInterval, and once that
// drain finds it empty too the reader parks: it drains every parkedPoll,
// or at once when the proxy reports a packet (Source.Packet). Every SIP
// message the programs capture is one the proxy reads or writes, so the
// first packet of a burst after idle wakes the reader as it arrives, and
// parkedPoll only bounds how late an event no proxy packet announces is
// read (a TCP segment the kernel sends after the proxy's last write, or
// a datagram the proxy never read) and how late unmatched entries expire
// once traffic stops. The first event after a wake-up goes back to
// pollInterval.
const (
	pollInterval     = 2 * time.Millisecond
	idlePollInterval = 32 * time.Millisecond
	parkedPoll       = time.Second
)

// nextPoll is the wait after a drain that read n records, given the
// previous wait; parkedPoll means "park".
func nextPoll(prev time.Duration, n int) time.Duration {
	switch {
	case n > 0:
		return pollInterval
	case prev >= idlePollInterval:
		return parkedPoll
	default:
		return min(2*prev, idlePollInterval)
	}
}

// ring is the part of *bpf.Capture the reader loop uses (tests fake it).
type ring interface {
	Read(rec *bpf.Event) error
	SetReadDeadline(t time.Time)
}

// Source runs the kernel capture: it reads bpf ring-buffer records, turns
// them into KernelEvents and feeds the Matcher. The proxy's transport feeds
// the other side through Source.Packet (Source is its observe.Observer).
type Source struct {
	capture *bpf.Capture
	ring    ring // capture, except in tests
	matcher *Matcher
	// parked is set while Run waits parkedPoll; Packet then wakes it
	// through wake (capacity 1, so a wake-up is never lost or blocking).
	parked     atomic.Bool
	wake       chan struct{}
	parkedPoll time.Duration
	clock      *Clock
	ifaces     []string
	log        *slog.Logger
}

// OpenSource loads and attaches the capture programs. A returned error
// wrapping bpf.ErrPermission or bpf.ErrUnsupported means "run without
// kernel timestamps"; the caller decides whether that is fatal.
func OpenSource(cfg SourceConfig, out func(Match)) (*Source, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ifaces := cfg.Interfaces
	if len(ifaces) == 0 {
		var err error
		if ifaces, err = interfacesFor(cfg.Listen); err != nil {
			return nil, fmt.Errorf("ebpf interfaces: %w", err)
		}
	}
	ports := listenPorts(cfg.Listen)
	c, err := bpf.Open(bpf.Config{
		Interfaces: ifaces,
		Ports:      ports,
		PeerPorts:  cfg.ExtraPorts,
		// Only the proxy's side of the wire (on lo this halves the
		// events) and no reader wake-ups: Run drains on a timer (see
		// pollInterval and bench/README.md, "eBPF").
		ProxySideOnly: true,
		WakeupBytes:   bpf.WakeupNever,
		Snaplen:       cfg.Snaplen,
		ForceLegacy:   cfg.ForceLegacy,
		RingBytes:     cfg.RingBytes,
		Logger:        log,
	})
	if err != nil {
		return nil, err
	}
	clock := NewClock()
	m := NewMatcher(Config{TTL: cfg.TTL, LocalPorts: ports, Text: cfg.Text}, clock, out)
	return newSource(c, c, m, clock, ifaces, log), nil
}

func newSource(c *bpf.Capture, r ring, m *Matcher, clock *Clock, ifaces []string, log *slog.Logger) *Source {
	return &Source{
		capture: c, ring: r, matcher: m, clock: clock, ifaces: ifaces, log: log,
		wake: make(chan struct{}, 1), parkedPoll: parkedPoll,
	}
}

// Matcher joins the proxy's packets with kernel events.
func (s *Source) Matcher() *Matcher { return s.matcher }

var _ observe.Observer = (*Source)(nil)

// Packet is the proxy-side entry point (observe.Observer): the transport
// reports each message it read or wrote. It wakes a parked reader, then
// hands the packet to the Matcher. While the reader is polling this costs
// one atomic load.
func (s *Source) Packet(p observe.Packet) {
	if s.parked.Load() && s.parked.CompareAndSwap(true, false) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	s.matcher.AddPacket(&p)
}

// Clock converts kernel monotonic times to wall time.
func (s *Source) Clock() *Clock { return s.clock }

// Mode is "tcx" or "legacy".
func (s *Source) Mode() string { return s.capture.Mode() }

// Interfaces are the interfaces the programs are attached to.
func (s *Source) Interfaces() []string { return s.ifaces }

// Run reads events until ctx is done. It also re-measures the clock offset
// and expires unmatched entries. The programs stay attached until Close, so
// their counters can still be read after Run returns.
func (s *Source) Run(ctx context.Context) error {
	go s.clock.Run(ctx, 10*time.Second)
	// Reads never block (a deadline in the past): each wake-up drains
	// what the ring holds, then the goroutine parks on the timer.
	s.ring.SetReadDeadline(time.Unix(0, 1))
	// The Matcher expires inline while events flow; this covers the time
	// after traffic stops, at the pace of the wake-ups (parkedPoll).
	expireEvery := int64(s.matcher.TTL() / 4)
	nextExpire := observe.Monotonic() + expireEvery
	wait := pollInterval
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var rec bpf.Event
	var ev KernelEvent
	for {
		if s.parked.Load() {
			s.parked.Store(false)
		}
		n, err := s.drain(&rec, &ev)
		if err != nil {
			return closedIsNil(err)
		}
		if now := observe.Monotonic(); now >= nextExpire {
			s.matcher.Expire(now)
			nextExpire = now + expireEvery
		}
		wait = nextPoll(wait, n)
		sleep := wait
		if wait == parkedPoll {
			// Park before one last look: a packet the proxy reported
			// before this Store has its kernel event in the ring already
			// (ingress is stamped before the socket queues it; the
			// transport reports a send after the write, and a datagram's
			// egress hook runs inside that write), so this drain reads
			// it; any packet after it wakes us. A TCP segment the kernel
			// sends later (Nagle, congestion window) waits parkedPoll.
			s.parked.Store(true)
			if n, err = s.drain(&rec, &ev); err != nil {
				return closedIsNil(err)
			}
			sleep = s.parkedPoll
			if n > 0 {
				wait, sleep = pollInterval, pollInterval
			}
		}
		timer.Reset(sleep)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-s.wake:
			wait = pollInterval // restart the back-off: the reply may follow
		}
	}
}

// drain hands every record waiting in the ring to the matcher and returns
// how many there were.
func (s *Source) drain(rec *bpf.Event, ev *KernelEvent) (int, error) {
	for n := 0; ; n++ {
		if err := s.ring.Read(rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return n, nil // empty
			}
			return n, fmt.Errorf("ebpf ring buffer: %w", err)
		}
		toKernelEvent(rec, ev)
		s.matcher.AddKernel(ev)
	}
}

// closedIsNil is Run's result for a drain error: a ring closed under it
// (Close) is a normal end.
func closedIsNil(err error) error {
	if errors.Is(err, bpf.ErrClosed) {
		return nil
	}
	return err
}

// Close detaches the programs (legacy filters would otherwise outlive the
// process) and frees the ring buffer.
func (s *Source) Close() error { return s.capture.Close() }

// Counters are the programs' own per-CPU counters.
func (s *Source) Counters() (bpf.Counters, error) { return s.capture.Counters() }

// toKernelEvent converts a ring-buffer record without allocating.
func toKernelEvent(r *bpf.Event, ev *KernelEvent) {
	ev.Mono = int64(r.TsNs)
	ev.Ifindex = r.Ifindex
	ev.Hook = Ingress
	if r.Direction == bpf.DirEgress {
		ev.Hook = Egress
	}
	ev.Proto = r.L4Proto
	ev.Src = r.Src()
	ev.Dst = r.Dst()
	ev.PacketLen = int(r.PktLen)
	ev.PayloadLen = int(r.PayloadLen)
	ev.TCPSeq = r.TcpSeq
	ev.Payload = r.Payload()
}

// listenPorts returns the distinct listen ports.
func listenPorts(listen []netip.AddrPort) []uint16 {
	seen := map[uint16]bool{}
	var ports []uint16
	for _, l := range listen {
		if !seen[l.Port()] {
			seen[l.Port()] = true
			ports = append(ports, l.Port())
		}
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	return ports
}

// interfacesFor returns the interfaces that own the listen addresses; a
// wildcard listen address means every interface that is up.
func interfacesFor(listen []netip.AddrPort) ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	want := map[string]bool{}
	for _, l := range listen {
		a := l.Addr().Unmap()
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagUp == 0 {
				continue
			}
			if a.IsUnspecified() {
				want[ifc.Name] = true
				continue
			}
			addrs, err := ifc.Addrs()
			if err != nil {
				continue
			}
			for _, ad := range addrs {
				if pfx, err := netip.ParsePrefix(ad.String()); err == nil && pfx.Addr().Unmap() == a {
					want[ifc.Name] = true
				}
			}
		}
	}
	if len(want) == 0 {
		return nil, errors.New("no interface owns the listen addresses")
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}
