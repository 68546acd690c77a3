//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// SnapMax is the largest Config.Snaplen: the size of Event.Data, fixed
	// at compile time (SNAP_MAX in sipcap.c), the size of the per-CPU
	// scratch event the program builds records in.
	SnapMax = len(sipcapEvent{}.Data)
	// DefaultSnaplen is used when Config.Snaplen is 0.
	DefaultSnaplen = 2048
	// DefaultRingBytes is used when Config.RingBytes is 0: about 13,000
	// records of a typical 600-byte SIP message, i.e. about 0.2 s of a
	// proxy forwarding 5,000 calls/s if the reader stalls.
	DefaultRingBytes = 8 << 20

	// WakeupNever as Config.WakeupBytes: no event forces a wake-up.
	WakeupNever = -1

	// Attachment modes reported by Capture.Mode.
	ModeTCX    = "tcx"
	ModeLegacy = "legacy"
)

// Legacy (clsact + cls_bpf) filters outlive the process, so each one
// carries a name that says whose it is:
// "sipvigil:pid=<pid>:pidns=<pid namespace inode>:<direction>". Open deletes
// filters with this prefix whose pid is dead in our pid namespace. Filters
// from another pid namespace (a container sharing the host network) are
// never touched: we cannot tell whether their owner lives.
const (
	legacyNamePrefix = "sipvigil:pid="
	// legacyPriority is fixed so our filters are easy to spot in
	// `tc filter show`. 1 runs before filters added with tc's default
	// priorities, so we timestamp packets that a later filter redirects.
	legacyPriority = 1
)

// legacySeq makes the filter handle unique per Capture within a process,
// since handle+priority must be unique per interface and direction.
var legacySeq atomic.Uint32

var (
	// ErrUnsupported: the kernel lacks something sipcap needs (BPF, TC
	// programs, ring buffers). Run without kernel timestamps.
	ErrUnsupported = errors.New("bpf: kernel does not support SIP capture")
	// ErrPermission: the process may not load or attach BPF programs
	// (needs CAP_BPF + CAP_NET_ADMIN, or root).
	ErrPermission = errors.New("bpf: not permitted to load or attach SIP capture")
	// ErrClosed is returned by Read after Close.
	ErrClosed = errors.New("bpf: capture closed")
)

// Config selects what to capture. The zero values of Snaplen and RingBytes
// mean the defaults.
type Config struct {
	// Interfaces to attach to, by name, in the network namespace of the
	// OS thread that calls Open. The caller resolves defaults.
	Interfaces []string
	// Ports: a packet is captured when its source or destination port is
	// one of these (UDP and TCP alike).
	Ports []uint16
	// PeerPorts: ports of peers the proxy connects to itself (next hops),
	// captured like Ports; with ProxySideOnly they count only as the far
	// end of the proxy's own connections.
	PeerPorts []uint16
	// ProxySideOnly captures only the proxy's side of the wire: ingress to
	// Ports (or from PeerPorts), egress from Ports (or to PeerPorts). On lo
	// it halves ring traffic by skipping the peer's copy of each packet.
	ProxySideOnly bool
	// WakeupBytes batches reader wake-ups: 0 wakes the reader on every
	// event; otherwise only the event that carries the backlog across a
	// multiple of WakeupBytes wakes it, and the reader must poll
	// (SetReadDeadline) to collect smaller batches. WakeupNever: a reader
	// that never sleeps in Read (it drains on its own timer).
	WakeupBytes int
	// Snaplen: payload bytes copied per event, 1..SnapMax.
	Snaplen int
	// ForceLegacy skips TCX and attaches clsact/cls_bpf filters.
	ForceLegacy bool
	// RingBytes: ring buffer size; rounded up to a power of two that is at
	// least one page (a kernel requirement).
	RingBytes int
	// Logger for attach mode, fallbacks and stale-filter cleanup. Nil
	// discards.
	Logger *slog.Logger
}

// Capture owns the loaded programs, their attachments and the ring reader.
// Read may run in one goroutine while Close is called from another.
type Capture struct {
	objs   sipcapObjects
	reader *ringbuf.Reader
	// rec is Read's ringbuf.Record. ReadInto hands it on through an
	// interface, so a local one escaped: a heap allocation per event,
	// about a third of Read's cost at 50,000 events/s. Read runs in one
	// goroutine at a time, so one is enough.
	rec  ringbuf.Record
	nl   *netlink.Handle
	log  *slog.Logger
	mode string

	links   []link.Link          // TCX mode
	filters []*netlink.BpfFilter // legacy mode

	closeOnce sync.Once
	closeErr  error
}

// classify wraps err so callers can test errors.Is(err, ErrUnsupported) or
// errors.Is(err, ErrPermission) and still see the underlying cause.
func classify(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %s: %w", ErrPermission, what, err)
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, unix.ENOSYS),
		errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("%w: %s: %w", ErrUnsupported, what, err)
	}
	return fmt.Errorf("bpf: %s: %w", what, err)
}

func (cfg *Config) normalize() error {
	if len(cfg.Interfaces) == 0 {
		return errors.New("bpf: no interfaces configured")
	}
	if len(cfg.Ports) == 0 {
		return errors.New("bpf: no ports configured")
	}
	for _, p := range cfg.Ports {
		if p == 0 {
			return errors.New("bpf: port 0 in capture ports")
		}
	}
	if cfg.Snaplen == 0 {
		cfg.Snaplen = DefaultSnaplen
	}
	if cfg.Snaplen < 1 || cfg.Snaplen > SnapMax {
		return fmt.Errorf("bpf: snaplen %d out of range 1..%d", cfg.Snaplen, SnapMax)
	}
	if cfg.RingBytes == 0 {
		cfg.RingBytes = DefaultRingBytes
	}
	if cfg.RingBytes < 0 || cfg.RingBytes > 1<<30 {
		return fmt.Errorf("bpf: ring size %d out of range", cfg.RingBytes)
	}
	size := max(cfg.RingBytes, os.Getpagesize())
	cfg.RingBytes = 1 << bits.Len(uint(size-1))
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// loadSpec parses the embedded object and bakes cfg's ports, snaplen,
// side filter and wake-up threshold into its constants and cfg.RingBytes
// into the ring's size. Open uses it, and so do the program tests and
// benchmarks, which run the programs without attaching them.
func loadSpec(cfg Config) (*ebpf.CollectionSpec, error) {
	spec, err := loadSipcap()
	if err != nil {
		return nil, fmt.Errorf("bpf: parse embedded object: %w", err)
	}
	var portMap [65536 / 8]byte
	for _, p := range cfg.Ports {
		portMap[p>>3] |= 1 << (p & 7)
	}
	if err := spec.Variables[sipcapVarSipPortMap].Set(portMap); err != nil {
		return nil, fmt.Errorf("bpf: set ports: %w", err)
	}
	if err := spec.Variables[sipcapVarSnaplen].Set(uint32(cfg.Snaplen)); err != nil {
		return nil, fmt.Errorf("bpf: set snaplen: %w", err)
	}
	var peerMap [65536 / 8]byte
	for _, p := range cfg.PeerPorts {
		peerMap[p>>3] |= 1 << (p & 7)
	}
	if err := spec.Variables[sipcapVarPeerPortMap].Set(peerMap); err != nil {
		return nil, fmt.Errorf("bpf: set peer ports: %w", err)
	}
	var sideOnly uint8
	if cfg.ProxySideOnly {
		sideOnly = 1
	}
	if err := spec.Variables[sipcapVarProxySideOnly].Set(sideOnly); err != nil {
		return nil, fmt.Errorf("bpf: set proxy_side_only: %w", err)
	}
	// The program wakes the reader when backlog/wakeup_bytes changes.
	// MaxUint32 is WAKEUP_NEVER in sipcap.c: no wake-up, and no backlog
	// query per event either.
	wakeup := uint32(min(max(cfg.WakeupBytes, 0), math.MaxUint32))
	if cfg.WakeupBytes == WakeupNever {
		wakeup = math.MaxUint32
	}
	if err := spec.Variables[sipcapVarWakeupBytes].Set(wakeup); err != nil {
		return nil, fmt.Errorf("bpf: set wakeup_bytes: %w", err)
	}
	spec.Maps[sipcapMapEvents].MaxEntries = uint32(cfg.RingBytes)
	return spec, nil
}

// Open loads sipcap with cfg's ports and snaplen baked in as constants and
// attaches it at ingress and egress of every configured interface: with
// TCX when the kernel has it (>= 6.6) unless cfg.ForceLegacy, otherwise
// with clsact + cls_bpf filters. It first deletes legacy filters left by a
// sipvigil process that died without Close.
//
// Interfaces are resolved, and TCX links created, in the network namespace
// of the calling OS thread; to capture in another namespace, lock the
// thread and switch to it around Open. Close may run on any thread.
func Open(cfg Config) (*Capture, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	// Only matters on kernels < 5.11 (memlock accounting); a no-op after.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, classify("raise memlock rlimit", err)
	}

	spec, err := loadSpec(cfg)
	if err != nil {
		return nil, err
	}

	c := &Capture{log: cfg.Logger}
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			// Full log at debug: it is long, and only useful to a developer.
			c.log.Debug("sipcap verifier log", "log", fmt.Sprintf("%+v", ve))
		}
		return nil, classify("load sipcap", err)
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()

	c.reader, err = ringbuf.NewReader(c.objs.Events)
	if err != nil {
		return nil, classify("open ring buffer reader", err)
	}
	// A route-only handle, created now so its socket lives in the caller's
	// namespace; Close reuses it from whatever thread it runs on.
	c.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, classify("open netlink", err)
	}

	links := make([]netlink.Link, 0, len(cfg.Interfaces))
	for _, name := range cfg.Interfaces {
		l, err := c.nl.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("bpf: interface %q: %w", name, err)
		}
		// The program expects an Ethernet header at offset 0; on L3 devices
		// (tun, wireguard, ipip) TC data starts at the IP header.
		if et := l.Attrs().EncapType; et != "ether" && et != "loopback" {
			return nil, fmt.Errorf("%w: interface %q has link type %q, sipcap parses Ethernet framing only",
				ErrUnsupported, name, et)
		}
		links = append(links, l)
	}

	c.removeStale(links)

	if !cfg.ForceLegacy {
		err := c.attachTCX(links)
		switch {
		case err == nil:
			c.mode = ModeTCX
		case errors.Is(err, ebpf.ErrNotSupported):
			c.log.Warn("TCX not supported by this kernel, using legacy tc filters", "err", err)
			c.detachTCX()
		default:
			return nil, classify("attach tcx", err)
		}
	}
	if c.mode == "" {
		if err := c.attachLegacy(links); err != nil {
			return nil, classify("attach tc filter", err)
		}
		c.mode = ModeLegacy
	}
	c.log.Info("SIP packet capture attached", "mode", c.mode, "interfaces", cfg.Interfaces,
		"ports", cfg.Ports, "snaplen", cfg.Snaplen, "ring_bytes", cfg.RingBytes)
	ok = true
	return c, nil
}

// Mode reports how the programs are attached: ModeTCX or ModeLegacy.
func (c *Capture) Mode() string { return c.mode }

func (c *Capture) attachTCX(links []netlink.Link) error {
	for _, l := range links {
		for _, h := range []struct {
			prog *ebpf.Program
			at   ebpf.AttachType
		}{
			{c.objs.SipcapIngress, ebpf.AttachTCXIngress},
			{c.objs.SipcapEgress, ebpf.AttachTCXEgress},
		} {
			// Head: run before other TCX programs (which may redirect or
			// drop), so the timestamp is as early as the hook allows. The
			// verdict is TCX_NEXT, so they still run.
			tl, err := link.AttachTCX(link.TCXOptions{
				Interface: l.Attrs().Index,
				Program:   h.prog,
				Attach:    h.at,
				Anchor:    link.Head(),
			})
			if err != nil {
				return fmt.Errorf("%s: %w", l.Attrs().Name, err)
			}
			c.links = append(c.links, tl)
		}
	}
	return nil
}

func (c *Capture) detachTCX() error {
	var errs []error
	for _, l := range c.links {
		errs = append(errs, l.Close())
	}
	c.links = nil
	return errors.Join(errs...)
}

func (c *Capture) attachLegacy(links []netlink.Link) error {
	pid := os.Getpid()
	pidNS := selfPidNS()
	for _, l := range links {
		qdisc := &netlink.GenericQdisc{
			QdiscAttrs: netlink.QdiscAttrs{
				LinkIndex: l.Attrs().Index,
				Handle:    netlink.MakeHandle(0xffff, 0),
				Parent:    netlink.HANDLE_CLSACT,
			},
			QdiscType: "clsact",
		}
		// The clsact qdisc is shared with other tc users and is left in
		// place on Close: deleting it would delete their filters too.
		if err := c.nl.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s: add clsact qdisc: %w", l.Attrs().Name, err)
		}
		for _, h := range []struct {
			prog   *ebpf.Program
			parent uint32
			dir    string
		}{
			{c.objs.SipcapIngress, netlink.HANDLE_MIN_INGRESS, "ingress"},
			{c.objs.SipcapEgress, netlink.HANDLE_MIN_EGRESS, "egress"},
		} {
			f := &netlink.BpfFilter{
				FilterAttrs: netlink.FilterAttrs{
					LinkIndex: l.Attrs().Index,
					Parent:    h.parent,
					Handle:    uint32(pid)<<8 | legacySeq.Add(1)&0xff,
					Priority:  legacyPriority,
					Protocol:  unix.ETH_P_ALL,
				},
				Fd:           h.prog.FD(),
				Name:         fmt.Sprintf("%s%d:pidns=%d:%s", legacyNamePrefix, pid, pidNS, h.dir),
				DirectAction: true,
			}
			if err := c.nl.FilterAdd(f); err != nil {
				return fmt.Errorf("%s: add %s filter: %w", l.Attrs().Name, h.dir, err)
			}
			c.filters = append(c.filters, f)
		}
	}
	return nil
}

func (c *Capture) detachLegacy() error {
	var errs []error
	for _, f := range c.filters {
		// ENOENT/ENODEV: the filter or the interface is already gone.
		if err := c.nl.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete filter %s on ifindex %d: %w", f.Name, f.LinkIndex, err))
		}
	}
	c.filters = nil
	return errors.Join(errs...)
}

// removeStale deletes legacy filters named by a sipvigil process that no
// longer runs (crash, kill -9): they would keep running our program into a
// ring buffer nobody reads. Filters of live processes, this one included,
// are left alone: another Capture may own them. Best effort: failures are
// logged, not returned, since they do not stop this run.
func (c *Capture) removeStale(links []netlink.Link) {
	myNS := selfPidNS()
	for _, l := range links {
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			// Fails with EINVAL when there is no clsact qdisc: nothing stale.
			filters, err := c.nl.FilterList(l, parent)
			if err != nil {
				continue
			}
			for _, f := range filters {
				bf, ok := f.(*netlink.BpfFilter)
				if !ok {
					continue
				}
				pid, pidNS, ok := legacyOwner(bf.Name)
				if !ok || pidNS != myNS || processAlive(pid) {
					continue
				}
				if err := c.nl.FilterDel(bf); err != nil && !errors.Is(err, unix.ENOENT) {
					c.log.Warn("cannot delete stale sipvigil tc filter", "interface", l.Attrs().Name,
						"filter", bf.Name, "err", err)
					continue
				}
				c.log.Warn("deleted stale sipvigil tc filter left by a dead process",
					"interface", l.Attrs().Name, "filter", bf.Name)
			}
		}
	}
}

// legacyOwner returns the pid and pid namespace encoded in one of our
// filter names.
func legacyOwner(name string) (pid int, pidNS uint64, ok bool) {
	rest, ok := strings.CutPrefix(name, legacyNamePrefix)
	if !ok {
		return 0, 0, false
	}
	pidStr, rest, _ := strings.Cut(rest, ":pidns=")
	nsStr, _, _ := strings.Cut(rest, ":")
	pid, err1 := strconv.Atoi(pidStr)
	pidNS, err2 := strconv.ParseUint(nsStr, 10, 64)
	return pid, pidNS, err1 == nil && err2 == nil && pid > 0
}

// selfPidNS returns the inode of our pid namespace, 0 if unknown.
func selfPidNS() uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0
	}
	return st.Ino
}

func processAlive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	// Signal 0 checks existence. EPERM means it exists but is not ours.
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Close detaches every hook, then closes the ring reader (a blocked Read
// returns ErrClosed) and the BPF objects. Legacy filters are deleted
// explicitly: unlike TCX links they are not tied to a file descriptor.
// Safe to call more than once.
func (c *Capture) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		errs = append(errs, c.detachTCX(), c.detachLegacy())
		if c.reader != nil {
			errs = append(errs, c.reader.Close())
		}
		errs = append(errs, c.objs.Close())
		if c.nl != nil {
			c.nl.Close()
		}
		if err := errors.Join(errs...); err != nil {
			c.closeErr = fmt.Errorf("bpf: close: %w", err)
		}
	})
	return c.closeErr
}
