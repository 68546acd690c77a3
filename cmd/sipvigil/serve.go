package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"sipvigil/proxy/config"
	"sipvigil/proxy/dispatch"
	"sipvigil/proxy/route"
	"sipvigil/proxy/suspend"
	"sipvigil/proxy/transport"
	"sipvigil/proxy/worker"
	"sipvigil/telemetry/metrics"
)

// drainLinger is how long a drained proxy keeps relaying in-dialog
// requests before it closes its sockets.
const drainLinger = 2 * time.Second

// defaultGCPercent is GOGC when the environment does not set it.
const defaultGCPercent = 400

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML config file (default: the embedded default config)")
	listen := fs.String("listen", "", "override the listen address, e.g. 127.0.0.1:5060 (UDP and TCP)")
	hop := fs.String("route", "", "override the default route's next hop, e.g. 127.0.0.1:5070;transport=udp")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until shutdown (for performance work)")
	kernelDump := fs.String("kernel-dump", "", "write every message joined to its eBPF kernel timestamp to this file, as JSON lines (debugging)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var cfg *config.Config
	var err error
	if *cfgPath != "" {
		cfg, err = config.Load(*cfgPath)
	} else {
		cfg, err = config.Parse("default.yaml (embedded)", config.Default())
	}
	if err == nil {
		err = cfg.Override(*listen, *hop)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	if os.Getenv("GOGC") == "" {
		// Every SIP message is parsed into a few dozen small objects that
		// die within a transaction's lifetime. Collecting at 5x the live
		// heap instead of 2x cuts the collector's CPU per call by about
		// 4x for a few hundred MB more memory at thousands of calls/s.
		// GOGC and GOMEMLIMIT in the environment still win.
		debug.SetGCPercent(defaultGCPercent)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if err := runProxy(cfg, log, *kernelDump); err != nil {
		log.Error("sipvigil stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runProxy builds reader → dispatcher → workers → writer and runs it until
// SIGTERM or SIGINT, then drains.
func runProxy(cfg *config.Config, log *slog.Logger, kernelDump string) error {
	n := cfg.Workers.EffectiveCount()
	picker := dispatch.NewPicker(n)
	router := route.New(cfg)
	health := route.NewHealth(router)

	var listens []transport.Listen
	var locals []worker.Local
	for _, l := range cfg.Listen {
		tl := transport.Listen{Addr: l.Address}
		for _, t := range l.Transports {
			proto, err := transport.ParseProto(t)
			if err != nil {
				return fmt.Errorf("listen %s: %w", l.Address, err)
			}
			switch proto {
			case transport.UDP:
				tl.UDP = true
			case transport.TCP:
				tl.TCP = true
			}
			locals = append(locals, worker.Local{Proto: proto, Addr: l.Address, Host: l.AdvertiseHost, Port: l.AdvertisePort})
		}
		listens = append(listens, tl)
	}

	var listenAddrs []netip.AddrPort
	for _, l := range cfg.Listen {
		listenAddrs = append(listenAddrs, l.Address)
	}
	var hopPorts []uint16
	for _, h := range router.Hops() {
		hopPorts = append(hopPorts, uint16(h.Port))
	}
	kt, err := openKernel(cfg, listenAddrs, hopPorts, kernelDump, log)
	if err != nil {
		return err
	}
	tel, err := openTelemetry(cfg, kt, log)
	if err != nil {
		return err
	}

	disp := dispatch.New(nil, picker, nil, cfg.Proxy.OverloadRetryAfter, log)
	tp, err := transport.New(transport.Config{
		Listen:            listens,
		UDPSockets:        cfg.UDP.Sockets,
		RecvBuffer:        cfg.UDP.RecvBuffer,
		SendBuffer:        cfg.UDP.SendBuffer,
		MaxDatagram:       cfg.UDP.MaxDatagram,
		TCPIdleTimeout:    cfg.TCP.IdleTimeout,
		TCPConnectTimeout: cfg.TCP.ConnectTimeout,
		MaxMessageSize:    cfg.TCP.MaxMessageSize,
		Logger:            log,
		Observer:          kt.Observer(),
		PacketIDs:         tel.tracker != nil,
	}, disp)
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}

	// Suspend queues and lookups are shared by every worker; a released
	// ticket goes back to the worker that owns its transaction.
	workers := make([]*worker.Worker, n)
	queues, queueBindings := buildQueues(cfg, func(t suspend.Ticket) { workers[t.Worker].Release(t) })
	lookups, lookupBindings, err := buildLookups(cfg, log)
	if err != nil {
		return err
	}

	allHops := router.Hops()
	inboxes := make([]dispatch.Inbox, n)
	for i := range workers {
		var probes []*route.Hop
		for j, h := range allHops {
			if j%n == i {
				probes = append(probes, h)
			}
		}
		pin := -1
		if cfg.Workers.PinCPUs {
			pin = i % runtime.NumCPU()
		}
		workers[i] = worker.New(worker.Options{
			Index:        i,
			InboxSize:    cfg.Workers.Inbox,
			LockOSThread: cfg.Workers.LockOSThread,
			PinCPU:       pin,
			Timers:       txnTimers(cfg.Timers),
			TimerC:       cfg.Timers.TimerC,
			RecordRoute:  cfg.Proxy.RecordRoute,
			MaxForwards:  cfg.Proxy.MaxForwards,
			UDPMTU:       cfg.Proxy.UDPMTUThreshold,
			Locals:       locals,
			Router:       router,
			Health:       health,
			Probes:       probes,
			Queues:       queueBindings,
			Lookups:      lookupBindings,
			RejectQueued: cfg.Shutdown.Queued == config.ShutdownReject,
			Out:          tp,
			Pick:         picker.Pick,
			Txns:         tel.txnObserver(),
			KernelStamps: kt.Enabled(),
			Log:          log,
		})
		inboxes[i] = workers[i]
	}
	disp.Bind(inboxes, tp)
	if err := tel.registerMetrics(metrics.Sources{
		Workers:    metrics.WorkerSources(workers),
		Dispatcher: disp,
		Transport:  tp,
		Queues:     queues,
		Lookups:    lookups,
		Health:     health,
		Kernel:     metrics.Kernel(kt.src),
	}); err != nil {
		return err
	}

	sigCtx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()

	tel.start()
	defer tel.stop()
	var wg sync.WaitGroup
	tpErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tpErr <- tp.Serve(runCtx)
	}()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Run(runCtx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		kt.run(runCtx, log)
	}()
	for _, q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.Run(runCtx)
		}()
	}
	for _, l := range lookups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Run(runCtx)
		}()
	}
	for _, warning := range cfg.Warnings {
		log.Warn(warning)
	}
	tel.ready.Store(true)
	log.Info("sipvigil serving", "version", version, "listen", listens, "workers", n, "record_route", cfg.Proxy.RecordRoute)

	select {
	case <-sigCtx.Done():
	case err := <-tpErr:
		stopRun()
		wg.Wait()
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("transport: %w", err)
		}
		return nil
	}

	// Graceful shutdown: new dialogs get 503, open transactions get until
	// the grace deadline, then whatever is left is answered 503.
	deadline := time.Now().Add(cfg.Shutdown.Grace)
	tel.ready.Store(false)
	log.Info("draining", "grace", cfg.Shutdown.Grace)
	disp.Drain()
	// Queued requests are released now (policy "release"), or answered
	// 503 by their workers (policy "reject") as their tickets come back.
	for _, w := range workers {
		w.ShutdownQueued()
	}
	for _, q := range queues {
		if released := q.Flush(); released > 0 {
			log.Info("released suspended requests", "queue", q.Name(), "count", released)
		}
	}
	drained := make([]<-chan struct{}, len(workers))
	for i, w := range workers {
		drained[i] = w.Drain(deadline)
	}
	for _, ch := range drained {
		select {
		case <-ch:
		case <-time.After(time.Until(deadline) + 2*time.Second):
		}
	}
	// Every transaction has its final response. Keep routing in-dialog
	// traffic a little longer, so the ACKs for the last 2xx responses and
	// the BYEs right behind them still find their way (new dialogs are
	// still refused).
	log.Info("drained; lingering for in-dialog requests", "linger", drainLinger)
	time.Sleep(drainLinger)
	stopRun()
	wg.Wait()
	logQueueStats(log, queues)
	kt.logStats(log)
	log.Info("sipvigil stopped")
	return nil
}
