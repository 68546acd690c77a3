package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"sipvigil/proxy/config"
	"sipvigil/proxy/observe"
	"sipvigil/telemetry/evidence"
	"sipvigil/telemetry/metrics"
	"sipvigil/telemetry/tracing"
)

// telemetry is everything that watches the proxy from the side: the
// evidence tracker (records → kernel timestamps → ordering checks), trace
// export and the metrics endpoint. Each part is optional and SIP never
// waits for any of them.
type telemetry struct {
	tracker *evidence.Tracker // nil when neither traces nor metrics are on
	traces  *tracing.Exporter // nil when tracing is off
	server  *metrics.Server   // nil when metrics.listen is off
	reg     *prometheus.Registry
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	log     *slog.Logger
	// ready is /readyz: set once the proxy serves, cleared when it starts
	// draining, so a load balancer stops sending new calls first.
	ready atomic.Bool
}

// txnObserver is what workers report transaction records to (nil: none).
func (t *telemetry) txnObserver() observe.TxnObserver {
	if t.tracker == nil {
		return nil
	}
	return t.tracker
}

// tracingConfig maps the YAML section onto tracing.Config and applies the
// OTEL_* environment underneath it.
func tracingConfig(c config.Tracing, getenv func(string) string) (tracing.Config, error) {
	tc := tracing.Config{
		Endpoint: c.Endpoint, Protocol: c.Protocol, Headers: c.Headers, Insecure: c.Insecure,
		CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile, Compression: c.Compression,
		QueueSize: c.QueueSize, BatchSize: c.BatchSize, BatchTimeout: c.BatchTimeout,
		ExportTimeout: c.ExportTimeout, ServiceName: c.ServiceName,
		ResourceAttributes: c.ResourceAttributes, Redact: c.Redact,
		Enabled: c.Endpoint != "",
	}
	switch {
	case c.SampleRatio == 0:
		tc.SampleRatio = tracing.SampleNone
	case c.SampleRatio > 0:
		tc.SampleRatio = c.SampleRatio
	}
	tc, err := tracing.FromEnv(tc, getenv)
	if err != nil {
		return tc, err
	}
	if c.Enabled != nil {
		tc.Enabled = *c.Enabled
	}
	return tc, nil
}

// openTelemetry builds the parts the config asks for. wall converts
// monotonic ns to wall time (the eBPF clock when it runs).
func openTelemetry(cfg *config.Config, kt *kernelTelemetry, log *slog.Logger) (*telemetry, error) {
	t := &telemetry{log: log, reg: prometheus.NewRegistry()}
	tc, err := tracingConfig(cfg.Tracing, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	var sinks []evidence.Sink
	var sampled func([16]byte) bool
	if tc.Enabled {
		t.traces, err = tracing.New(context.Background(), tc, version, log.With("component", "tracing"))
		if err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
		sinks = append(sinks, t.traces)
		sampled = t.traces.Sampled
		log.Info("tracing enabled", "endpoint", tc.Endpoint, "protocol", tc.Protocol, "sample_ratio", tc.SampleRatio)
	}
	if cfg.Metrics.Listen != "" {
		t.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		sinks = append(sinks, metrics.NewEvidence(t.reg, sampled), metrics.NewTraffic(t.reg))
		t.server, err = metrics.Listen(cfg.Metrics.Listen, t.reg, t.ready.Load, log.With("component", "metrics"))
		if err != nil {
			if t.traces != nil {
				_ = t.traces.Shutdown(context.Background())
			}
			return nil, err
		}
		log.Info("metrics endpoint", "listen", t.server.Addr().String())
	}
	if len(sinks) > 0 {
		ec := evidence.Config{Settle: cfg.Tracing.Settle, LogCallID: logCallID(cfg.Tracing.Redact), Log: log.With("component", "evidence")}
		if kt.Enabled() {
			ec.Wall = kt.src.Clock().Wall
		}
		t.tracker = evidence.New(ec, sinks...)
	}
	return t, nil
}

// start runs the tracker and the metrics server until stop.
func (t *telemetry) start() {
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	if t.tracker != nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.tracker.Run(ctx)
		}()
	}
	if t.server != nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.server.Serve(ctx)
		}()
	}
}

// stop resolves the last records, flushes traces and closes the endpoint.
// Call it after the workers have stopped.
func (t *telemetry) stop() {
	if t.cancel != nil {
		t.cancel()
	}
	t.wg.Wait()
	if t.traces != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := t.traces.Shutdown(ctx); err != nil {
			t.log.Warn("trace export flush failed", "err", err)
		}
		st := t.traces.Stats()
		t.log.Info("tracing stats", "spans", st.Spans, "exported", st.Exported, "export_failed", st.ExportFailed, "dropped", st.Dropped)
	}
	if t.tracker != nil {
		st := t.tracker.Stats()
		t.log.Info("evidence stats", "records", st.Records, "dropped", st.Dropped, "resolved", st.Resolved,
			"msgs_kernel", st.MsgsKernel, "msgs_user", st.MsgsUser, "violations", st.Violations)
	}
}

// logCallID applies tracing.redact to Call-IDs in logs, the same way as to
// span attributes; nil when Call-IDs are logged as they are.
func logCallID(mode string) func(string) string {
	if mode == "" || mode == config.RedactNone {
		return nil
	}
	return func(callID string) string {
		if v, keep := tracing.Redact(mode, callID); keep {
			return v
		}
		return "[redacted]"
	}
}

// registerMetrics exposes the proxy's own counters (read at scrape time)
// when the metrics endpoint is on.
func (t *telemetry) registerMetrics(s metrics.Sources) error {
	if t.server == nil {
		return nil
	}
	if t.tracker != nil {
		s.Tracker = t.tracker
	}
	if t.traces != nil {
		s.Traces = t.traces
	}
	s.Build = metrics.NewBuildInfo(version)
	s.Log = t.log.With("component", "metrics")
	if err := metrics.Register(t.reg, s); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
