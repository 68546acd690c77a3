package metrics

import (
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"sipvigil/bpf"
	"sipvigil/proxy/dispatch"
	"sipvigil/proxy/lookup"
	"sipvigil/proxy/route"
	"sipvigil/proxy/suspend"
	"sipvigil/proxy/transport"
	"sipvigil/proxy/worker"
	"sipvigil/telemetry/evidence"
	"sipvigil/telemetry/kernel"
	"sipvigil/telemetry/tracing"
)

// The small interfaces below are what the collectors read. They exist so
// that tests can scrape fakes with exact values, and so that a source that
// is off can simply be left nil; the proxy's own types satisfy them as they
// are (see Sources for which object provides which).

// WorkerSource is one worker's counters; *worker.Worker implements it.
// Snapshot also carries the inbox depth, so InboxDepth is not needed.
type WorkerSource interface {
	Snapshot() worker.Snapshot
}

// DispatcherSource is the dispatcher's counters; *dispatch.Dispatcher
// implements it.
type DispatcherSource interface {
	Snapshot() dispatch.CountersSnapshot
}

// TransportSource is the transport's counters; *transport.Transport
// implements it.
type TransportSource interface {
	Counters() transport.Counters
}

// KernelSource is the eBPF capture and its matcher. *kernel.Source spreads
// these over itself, its Matcher and its Clock; wrap it with Kernel.
type KernelSource interface {
	// Counters reads the programs' per-CPU counters (a map lookup, so
	// it can fail).
	Counters() (bpf.Counters, error)
	MatcherStats() kernel.MatcherStats
	ClockSteps() uint64
}

// TracesSource is the trace exporter's counters; *tracing.Exporter
// implements it.
type TracesSource interface {
	Stats() tracing.Stats
}

// Kernel adapts a *kernel.Source to KernelSource. It returns nil for a nil
// source (eBPF off), so Sources.Kernel can be set unconditionally.
func Kernel(src *kernel.Source) KernelSource {
	if src == nil {
		return nil
	}
	return kernelAdapter{src}
}

type kernelAdapter struct{ src *kernel.Source }

func (k kernelAdapter) Counters() (bpf.Counters, error)   { return k.src.Counters() }
func (k kernelAdapter) MatcherStats() kernel.MatcherStats { return k.src.Matcher().Stats() }
func (k kernelAdapter) ClockSteps() uint64                { return k.src.Clock().Steps() }

// WorkerSources converts a slice of workers (e.g. []*worker.Worker) for
// Sources.Workers; Go does not convert slices of interfaces implicitly.
func WorkerSources[W WorkerSource](ws []W) []WorkerSource {
	out := make([]WorkerSource, len(ws))
	for i, w := range ws {
		out[i] = w
	}
	return out
}

// BuildInfo labels sipvigil_build_info.
type BuildInfo struct {
	Version, Revision, GoVersion string
}

// NewBuildInfo fills Revision from the binary's VCS stamp and GoVersion
// from the runtime, the way `sipvigil version` reports them.
func NewBuildInfo(version string) BuildInfo {
	b := BuildInfo{Version: version, Revision: "unknown", GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				b.Revision = s.Value
			}
		}
	}
	return b
}

// Sources are the read-only views the collectors scrape at scrape time;
// nil or empty fields are skipped (their metrics are absent, except
// sipvigil_ebpf_enabled, which is 0, and sipvigil_suspended_transactions,
// which is 0 when there are workers but no queues or lookups).
type Sources struct {
	Workers    []WorkerSource   // WorkerSources(workers); label worker = index
	Dispatcher DispatcherSource // *dispatch.Dispatcher
	Transport  TransportSource  // *transport.Transport
	Queues     []*suspend.Queue
	Lookups    []*lookup.Client
	Health     *route.Health
	// Kernel is Kernel(src), nil when eBPF is off: then
	// sipvigil_ebpf_enabled is 0 and the other sipvigil_ebpf_* series are
	// absent rather than 0, so that "no ring drops" is never claimed for a
	// capture that does not run.
	Kernel  KernelSource
	Tracker *evidence.Tracker // nil when no tracker
	Traces  TracesSource      // nil when tracing is off
	Build   BuildInfo
	// Log receives scrape-time problems (an eBPF counter read failing);
	// nil discards them.
	Log *slog.Logger
}

// Register registers one collector per subsystem on reg. Everything is
// read when Prometheus scrapes: the proxy's hot paths only bump their own
// atomics and never see Prometheus. On error nothing stays registered.
//
// The go_* and process_* collectors are not included: register them
// beside (collectors.NewGoCollector, collectors.NewProcessCollector).
func Register(reg prometheus.Registerer, s Sources) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var cs []namedCollector
	add := func(name string, c prometheus.Collector) { cs = append(cs, namedCollector{name, c}) }

	// A worker's label is its index in s.Workers, which is its index in
	// the proxy (worker.Options.Index), even if a nil one is skipped.
	var workers []WorkerSource
	var workerLabels []string
	for i, w := range s.Workers {
		if !isNil(w) {
			workers = append(workers, w)
			workerLabels = append(workerLabels, strconv.Itoa(i))
		}
	}
	if len(workers) > 0 {
		add("workers", newWorkerCollector(workers, workerLabels))
	}
	if !isNil(s.Dispatcher) {
		add("dispatcher", newDispatchCollector(s.Dispatcher))
	}
	if !isNil(s.Transport) {
		add("transport", newTransportCollector(s.Transport))
	}
	var queues []queueSource
	for _, q := range s.Queues {
		if q != nil {
			queues = append(queues, q)
		}
	}
	var lookups []lookupSource
	for _, l := range s.Lookups {
		if l != nil {
			lookups = append(lookups, l)
		}
	}
	if len(workers) > 0 || len(queues) > 0 || len(lookups) > 0 {
		add("suspend", newSuspendCollector(queues, lookups))
	}
	if s.Health != nil {
		add("health", newHealthCollector(s.Health))
	}
	var k KernelSource
	if !isNil(s.Kernel) {
		k = s.Kernel
	}
	add("ebpf", newKernelCollector(k, log))
	if s.Tracker != nil {
		add("evidence tracker", newTrackerCollector(s.Tracker))
	}
	if !isNil(s.Traces) {
		add("tracing", newTracesCollector(s.Traces))
	}
	add("build info", newBuildCollector(s.Build))
	return registerAll(reg, cs)
}

type namedCollector struct {
	name string
	c    prometheus.Collector
}

// registerAll registers cs in order and, when one fails, unregisters the
// ones before it so that the caller may fix the problem and try again.
func registerAll(reg prometheus.Registerer, cs []namedCollector) error {
	for i, nc := range cs {
		if err := reg.Register(nc.c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done.c)
			}
			return fmt.Errorf("metrics: register %s collector: %w", nc.name, err)
		}
	}
	return nil
}

// isNil reports a nil interface or an interface holding a nil pointer: a
// nil *tracing.Exporter assigned to Sources.Traces must mean "off", not a
// collector that panics (or reports zeros) at every scrape.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}
