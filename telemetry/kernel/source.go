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
// the ring empty doubles the wait, up to idlePollInterval, and the first
// one that finds events goes back to pollInterval. The 32 ms worst case
// after idle is ~1.6 MiB of a 5,000 calls/s burst, and far below the
// evidence tracker's 250 ms settle time.
const (
	pollInterval     = 2 * time.Millisecond
	idlePollInterval = 32 * time.Millisecond
)

// nextPoll is the wait after a drain that read n records, given the
// previous wait.
func nextPoll(prev time.Duration, n int) time.Duration {
	if n > 0 {
		return pollInterval
	}
	return min(2*prev, idlePollInterval)
}

// Source runs the kernel capture: it reads bpf ring-buffer records, turns
// them into KernelEvents and feeds the Matcher, which the proxy's transport
// feeds from the other side (Matcher implements observe.Observer).
type Source struct {
	capture *bpf.Capture
	matcher *Matcher
	clock   *Clock
	ifaces  []string
	log     *slog.Logger
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
	return &Source{capture: c, matcher: m, clock: clock, ifaces: ifaces, log: log}, nil
}

// Matcher is the proxy-side entry point (an observe.Observer).
func (s *Source) Matcher() *Matcher { return s.matcher }

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
	go func() {
		tick := time.NewTicker(s.matcher.TTL() / 4)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s.matcher.Expire(observe.Monotonic())
			}
		}
	}()
	// Reads never block (a deadline in the past): each wake-up drains
	// what the ring holds, then the goroutine parks on the timer.
	s.capture.SetReadDeadline(time.Unix(0, 1))
	wait := pollInterval
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var rec bpf.Event
	var ev KernelEvent
	for {
		n, err := s.drain(&rec, &ev)
		if err != nil {
			if errors.Is(err, bpf.ErrClosed) {
				return nil
			}
			return fmt.Errorf("ebpf ring buffer: %w", err)
		}
		wait = nextPoll(wait, n)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// drain hands every record waiting in the ring to the matcher and returns
// how many there were.
func (s *Source) drain(rec *bpf.Event, ev *KernelEvent) (int, error) {
	for n := 0; ; n++ {
		if err := s.capture.Read(rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return n, nil // empty
			}
			return n, err
		}
		toKernelEvent(rec, ev)
		s.matcher.AddKernel(ev)
	}
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
