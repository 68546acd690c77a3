package main

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"sipvigil/proxy/config"
	"sipvigil/proxy/lookup"
	"sipvigil/proxy/suspend"
	"sipvigil/proxy/worker"
)

// buildQueues creates the configured suspend queues. release hands a due
// ticket to its owning worker.
func buildQueues(cfg *config.Config, release func(suspend.Ticket)) ([]*suspend.Queue, map[string]*worker.QueueBinding) {
	names := slices.Sorted(maps.Keys(cfg.Queues))
	var queues []*suspend.Queue
	bindings := make(map[string]*worker.QueueBinding, len(names))
	for _, name := range names {
		qc := cfg.Queues[name]
		q := suspend.New(suspend.Config{Name: name, Delay: qc.Delay, Consumers: qc.Consumers, Capacity: qc.Capacity}, release)
		queues = append(queues, q)
		bindings[name] = &worker.QueueBinding{Name: name, Queue: q, Delay: qc.Delay, MaxWait: qc.MaxWait, OnFull: qc.OnFull}
	}
	return queues, bindings
}

// buildLookups creates the configured HTTP route lookup clients.
func buildLookups(cfg *config.Config, log *slog.Logger) ([]*lookup.Client, map[string]*worker.LookupBinding, error) {
	names := slices.Sorted(maps.Keys(cfg.Lookups))
	var clients []*lookup.Client
	bindings := make(map[string]*worker.LookupBinding, len(names))
	for _, name := range names {
		lc := cfg.Lookups[name]
		c, err := lookup.New(lookup.Config{
			Name:        name,
			LogCallID:   logCallID(cfg.Tracing.Redact),
			URL:         lc.URL,
			Timeout:     lc.Timeout,
			Concurrency: lc.Concurrency,
			QueueSize:   lc.QueueSize,
			OnTimeout:   lookup.Reply{Code: lc.OnTimeout.Code, Reason: lc.OnTimeout.Reason},
			OnError:     lookup.Reply{Code: lc.OnError.Code, Reason: lc.OnError.Reason},
		}, log.With("lookup", name))
		if err != nil {
			return nil, nil, fmt.Errorf("lookup %s: %w", name, err)
		}
		clients = append(clients, c)
		bindings[name] = &worker.LookupBinding{Name: name, Client: c, MaxWait: lc.MaxWait, OnError: lc.OnError}
	}
	return clients, bindings, nil
}

// logQueueStats writes one line per suspend queue at shutdown: what an
// operator (and bench/suspend.sh) needs to judge delay accuracy without a
// metrics backend.
func logQueueStats(log *slog.Logger, queues []*suspend.Queue) {
	ms := func(s float64) string { return fmt.Sprintf("%.3fms", s*1000) }
	for _, q := range queues {
		st := q.Stats()
		log.Info("queue stats", "queue", st.Name,
			"enqueued", st.Enqueued, "released", st.Released, "overflowed", st.Overflowed,
			"expired", st.Expired, "cancelled", st.Cancelled,
			"wait_p50", ms(st.Wait.Quantile(0.5)), "wait_p99", ms(st.Wait.Quantile(0.99)), "wait_max", ms(st.Wait.Max()),
			"late_p50", ms(st.Lateness.Quantile(0.5)), "late_p99", ms(st.Lateness.Quantile(0.99)), "late_max", ms(st.Lateness.Max()),
			"resumed", st.Resumed)
	}
}
