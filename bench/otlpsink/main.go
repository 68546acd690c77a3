// Command otlpsink is a do-nothing OTLP/HTTP trace receiver for the
// benchmarks (bench/capacity.sh --tracing on, bench/trace.sh). It stands in
// for a collector so that a capacity run measures what tracing costs the
// proxy, not what a backend costs the box.
//
// It listens on 127.0.0.1:PORT, accepts POST /v1/traces with any
// Content-Encoding (the body is read and discarded, never decoded), and
// answers 200 with Content-Type application/x-protobuf and an empty body,
// which is a valid empty ExportTraceServiceResponse (no partial success).
// Anything else is answered 404 or 405 and counted as rejected.
//
// On start it prints "otlpsink listening on 127.0.0.1:PORT"; on SIGTERM or
// SIGINT it stops (finishing requests in flight, at most 5 s) and prints
//
//	otlpsink requests=N bytes=N rejected=N
//
// requests: POST /v1/traces answered 200; bytes: their bodies as received
// (compressed bytes when the exporter gzips); rejected: other requests.
//
//	go build -o bin/otlpsink ./bench/otlpsink
//	bin/otlpsink -port 4318
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

type sink struct {
	requests, bytes, rejected atomic.Uint64
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" {
		s.rejected.Add(1)
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		s.rejected.Add(1)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	n, err := io.Copy(io.Discard, r.Body)
	s.bytes.Add(uint64(n))
	if err != nil {
		// The client went away mid-body: not an accepted export.
		s.rejected.Add(1)
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.requests.Add(1)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

func (s *sink) counts() string {
	return fmt.Sprintf("otlpsink requests=%d bytes=%d rejected=%d",
		s.requests.Load(), s.bytes.Load(), s.rejected.Load())
}

func main() {
	port := flag.Int("port", 4318, "TCP port on 127.0.0.1 (0: any free port, printed at start)")
	flag.Parse()
	if flag.NArg() > 0 || *port < 0 || *port > 65535 {
		fmt.Fprintln(os.Stderr, "usage: otlpsink [-port N]")
		os.Exit(2)
	}
	if err := run(*port); err != nil {
		fmt.Fprintln(os.Stderr, "otlpsink:", err)
		os.Exit(1)
	}
}

func run(port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	s := &sink{}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("otlpsink listening on %s\n", ln.Addr())

	select {
	case <-sigs:
	case err := <-served:
		fmt.Println(s.counts())
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.Join(err, srv.Close())
	}
	fmt.Println(s.counts())
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
