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

// wakeupBytes is how much must wait in the ring before the kernel wakes the
// reader; below it the reader's 2 ms poll collects the events. 64 KiB is
// about 100 records of a typical SIP message: a few ms of a busy proxy's
// traffic.
const wakeupBytes = 64 << 10

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
		// Only the proxy's side of the wire, and reader wake-ups in
		// batches: on lo this halves the events and removes a wake-up
		// per packet (see bench/README.md, "eBPF").
		ProxySideOnly: true,
		WakeupBytes:   wakeupBytes,
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
	// The ring reader cannot be interrupted from another goroutine without
	// closing it, and it must stay open for the counters to be read at
	// shutdown; so reads carry a rolling deadline and ctx is checked
	// whenever the ring has been idle that long.
	// With batched wake-ups this is also how often a trickle of events
	// (less than wakeupBytes) is collected.
	const idleCheck = 2 * time.Millisecond
	s.capture.SetReadDeadline(time.Now().Add(idleCheck))
	var rec bpf.Event
	var ev KernelEvent
	for {
		if err := s.capture.Read(&rec); err != nil {
			switch {
			case errors.Is(err, bpf.ErrClosed):
				return nil
			case errors.Is(err, os.ErrDeadlineExceeded):
				if ctx.Err() != nil {
					return nil
				}
				s.capture.SetReadDeadline(time.Now().Add(idleCheck))
				continue
			}
			return fmt.Errorf("ebpf ring buffer: %w", err)
		}
		toKernelEvent(&rec, &ev)
		s.matcher.AddKernel(&ev)
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
