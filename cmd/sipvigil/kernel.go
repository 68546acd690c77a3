package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"sipvigil/proxy/config"
	"sipvigil/proxy/observe"
	"sipvigil/telemetry/kernel"
)

// kernelTelemetry is the eBPF side: nil source when disabled. SIP never
// depends on it.
type kernelTelemetry struct {
	src  *kernel.Source
	dump *matchDump
}

// Observer is what the transport reports packets to.
func (k *kernelTelemetry) Observer() observe.Observer {
	if k.src == nil {
		return nil
	}
	return k.src
}

// Enabled reports whether kernel timestamps are being taken.
func (k *kernelTelemetry) Enabled() bool { return k.src != nil }

// openKernel loads the capture programs unless configured off. In mode
// auto a kernel or privilege problem is one warning and the proxy runs on
// user-space timestamps; in mode on it is fatal.
func openKernel(cfg *config.Config, listen []netip.AddrPort, hopPorts []uint16, dumpPath string, log *slog.Logger) (*kernelTelemetry, error) {
	k := &kernelTelemetry{}
	if cfg.EBPF.Mode == config.EBPFOff {
		log.Info("eBPF disabled by config (ebpf.mode: off)")
		return k, nil
	}
	var out func(kernel.Match) // nil: the matcher only stamps, builds no Match
	if dumpPath != "" {
		d, err := newMatchDump(dumpPath)
		if err != nil {
			return nil, err
		}
		k.dump = d
		out = d.add
	}
	src, err := kernel.OpenSource(kernel.SourceConfig{
		Interfaces:  cfg.EBPF.Interfaces,
		Listen:      listen,
		ExtraPorts:  hopPorts,
		Snaplen:     cfg.EBPF.Snaplen,
		ForceLegacy: cfg.EBPF.LegacyTC,
		RingBytes:   cfg.EBPF.RingBuffer,
		TTL:         cfg.EBPF.MatchTTL,
		Text:        dumpPath != "",
		Logger:      log.With("component", "ebpf"),
	}, out)
	if err != nil {
		if cfg.EBPF.Mode == config.EBPFOn {
			return nil, fmt.Errorf("ebpf (mode on): %w", err)
		}
		log.Warn("eBPF kernel timestamps disabled; SIP traffic is unaffected and traces use user-space times",
			"err", err, "hint", "needs CAP_BPF and CAP_NET_ADMIN (or root) and a kernel with TC BPF and ring buffers; set ebpf.mode: off to silence")
		if k.dump != nil {
			k.dump.close()
			k.dump = nil
		}
		return k, nil
	}
	k.src = src
	log.Info("eBPF kernel timestamps enabled", "mode", src.Mode(), "interfaces", src.Interfaces())
	return k, nil
}

// run reads kernel events until ctx is done (no-op when disabled).
func (k *kernelTelemetry) run(ctx context.Context, log *slog.Logger) {
	if k.src == nil {
		return
	}
	if err := k.src.Run(ctx); err != nil {
		log.Error("eBPF capture stopped", "err", err)
	}
}

// logStats writes the capture and matcher counters at shutdown.
func (k *kernelTelemetry) logStats(log *slog.Logger) {
	if k.dump != nil {
		k.dump.close()
	}
	if k.src == nil {
		return
	}
	// Give late kernel events and packets their chance, then expire the
	// rest so "unmatched" counts what truly never matched.
	m := k.src.Matcher()
	m.Expire(observe.Monotonic() + int64(m.TTL()))
	st := m.Stats()
	attrs := []any{
		"kernel_events", st.KernelEvents, "packets", st.Packets, "matched", st.Matched,
		"unmatched_kernel", st.UnmatchedKernel, "unmatched_packet", st.UnmatchedPacket,
		"evicted", st.Evicted, "other_side", st.OtherSide, "short_capture", st.ShortCapture,
		"tcp_unaligned", st.TCPUnaligned, "tcp_incomplete", st.TCPIncomplete,
		"clock_steps", k.src.Clock().Steps(),
	}
	if c, err := k.src.Counters(); err == nil {
		attrs = append(attrs, "bpf_seen", c.Seen, "bpf_captured", c.Captured, "ring_drops", c.RingDrops)
	} else {
		attrs = append(attrs, "bpf_counters_err", err)
	}
	if k.dump != nil {
		attrs = append(attrs, "dump_dropped", k.dump.dropped.Load())
	}
	log.Info("ebpf stats", attrs...)
	if err := k.src.Close(); err != nil {
		log.Warn("ebpf detach failed", "err", err)
	}
}

// matchDump writes matched messages as JSON lines (serve --kernel-dump):
// a debugging and test aid. The matcher calls add from the reader and the
// kernel goroutines; a bounded channel and one writer keep them unblocked.
type matchDump struct {
	ch      chan dumpLine
	dropped atomic.Uint64
	f       *os.File
	done    sync.WaitGroup
	once    sync.Once
}

type dumpLine struct {
	Dir        string    `json:"dir"`
	Proto      string    `json:"proto"`
	Local      string    `json:"local"`
	Remote     string    `json:"remote"`
	CallID     string    `json:"call_id"`
	CSeq       string    `json:"cseq"`
	Summary    string    `json:"summary"`
	UserMono   int64     `json:"user_mono"`
	KernelMono int64     `json:"kernel_mono"`
	Wall       time.Time `json:"wall"`
	Ifindex    uint32    `json:"ifindex"`
	Segments   int       `json:"segments"`
}

func newMatchDump(path string) (*matchDump, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("kernel dump: %w", err)
	}
	d := &matchDump{ch: make(chan dumpLine, 65536), f: f}
	d.done.Add(1)
	go func() {
		defer d.done.Done()
		w := bufio.NewWriter(f)
		enc := json.NewEncoder(w)
		for l := range d.ch {
			_ = enc.Encode(l)
		}
		_ = w.Flush()
		_ = f.Close()
	}()
	return d, nil
}

func (d *matchDump) add(m kernel.Match) {
	proto := "udp"
	if m.Packet.Proto == observe.ProtoTCP {
		proto = "tcp"
	}
	l := dumpLine{
		Dir: m.Packet.Dir.String(), Proto: proto, Local: m.Packet.Local.String(), Remote: m.Packet.Remote.String(),
		CallID: m.Packet.CallID(), CSeq: m.Packet.CSeq(), Summary: m.Packet.Summary(),
		UserMono: m.Packet.Mono, KernelMono: m.KernelMono, Wall: m.Wall, Ifindex: m.Ifindex, Segments: m.Segments,
	}
	select {
	case d.ch <- l:
	default:
		d.dropped.Add(1)
	}
}

func (d *matchDump) close() {
	d.once.Do(func() {
		close(d.ch)
		d.done.Wait()
	})
}
