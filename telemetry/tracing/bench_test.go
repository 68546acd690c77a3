package tracing

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"

	"sipvigil/telemetry/evidence"
)

// Benchmarks report, besides ns/op:
//   - cpu-ns/op: process CPU time (user + system, every goroutine: the
//     encoder, the sender, the HTTP or gRPC client, the loopback collector
//     in the HTTP and gRPC benchmarks, GC) per op. On a shared machine it
//     is steadier than ns/op, and it is what tracing takes from the proxy
//     (minus the collector's share in the loopback benchmarks).
//   - wire-B/op: bytes per op on the wire (after compression for the
//     OTLP benchmarks; encoded spans for the discarding client).
//
// An op is one transaction ("invite": INVITE in, 100 out, INVITE out, 180
// in, 180 out, 200 in, 200 out, kernel timestamps) or one call ("call":
// that INVITE transaction, its ACK and a BYE transaction; 13 messages, 3
// spans). The ops cycle through benchCalls distinct calls, each with its
// own Call-ID, branches, tags, packet IDs and times, so that compression
// sees what it would see on a real proxy, not the same bytes again.

// BenchmarkExport measures Export into a discarding client: the encoder
// and the batching, without a transport.
func BenchmarkExport(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
		ops  [][]*evidence.Txn
	}{
		{"invite", Config{}, benchOps(false, true)},
		{"call", Config{}, benchOps(true, true)},
		{"call-user-ts", Config{}, benchOps(true, false)},
		{"invite-redact-hash", Config{Redact: RedactHash}, benchOps(false, true)},
		{"call-sampled-out", Config{SampleRatio: SampleNone}, benchOps(true, true)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := &countingClient{}
			e, err := NewWithClient(context.Background(), bc.cfg, "bench", c, nil)
			if err != nil {
				b.Fatal(err)
			}
			benchExport(b, e, bc.ops, &c.bytes)
		})
	}
}

// BenchmarkExportOTLPHTTP is BenchmarkExport through the real OTLP/HTTP
// client (gzip or no compression) to a loopback collector that reads and
// discards the body: the whole cost of tracing.
func BenchmarkExportOTLPHTTP(b *testing.B) {
	var wire atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		wire.Add(n)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	for _, bc := range benchTransports() {
		b.Run(bc.name, func(b *testing.B) {
			e, err := New(context.Background(), Config{Endpoint: srv.URL, Compression: bc.compression}, "bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			wire.Store(0)
			benchExport(b, e, bc.ops, &wire)
		})
	}
}

// BenchmarkExportOTLPGRPC is BenchmarkExportOTLPHTTP over OTLP/gRPC. The
// collector does not decode the requests (discardCodec), but gRPC
// decompresses them before any codec sees them: with gzip, cpu-ns/op
// includes a gunzip on the collector's side.
func BenchmarkExportOTLPGRPC(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wire atomic.Int64
	gs := grpc.NewServer(grpc.StatsHandler(&wireCounter{n: &wire}), grpc.ForceServerCodec(discardCodec{}))
	coltracepb.RegisterTraceServiceServer(gs, &traceService{})
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	for _, bc := range benchTransports() {
		b.Run(bc.name, func(b *testing.B) {
			e, err := New(context.Background(), Config{
				Endpoint: "http://" + lis.Addr().String(), Protocol: ProtocolGRPC, Compression: bc.compression,
			}, "bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			wire.Store(0)
			benchExport(b, e, bc.ops, &wire)
		})
	}
}

const benchCallID = "a84b4c76e66710@pc33.example.com"

type benchTransport struct {
	name        string
	compression string
	ops         [][]*evidence.Txn
}

func benchTransports() []benchTransport {
	return []benchTransport{
		{"invite-gzip", CompressionGzip, benchOps(false, true)},
		{"call-gzip", CompressionGzip, benchOps(true, true)},
		{"invite-none", CompressionNone, benchOps(false, true)},
		{"call-none", CompressionNone, benchOps(true, true)},
	}
}

// benchCalls is how many distinct calls the benchmarks cycle through: far
// more than fit in gzip's 32 KiB window.
const benchCalls = 1024

// benchOps makes benchCalls ops: whole calls, or their INVITE
// transactions only. Like SIPp's, Call-IDs are "<n>-<pid>@<host>"; the
// branches and tags are random, packet IDs count up, and each call starts
// a few ms after the previous one with jittered message delays.
func benchOps(call, kernel bool) [][]*evidence.Txn {
	rng := rand.New(rand.NewPCG(1, 2))
	hex := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[rng.IntN(16)]
		}
		return string(b)
	}
	ops := make([][]*evidence.Txn, benchCalls)
	pkt := uint64(1_000_000)
	mono := monoBase
	for i := range ops {
		txns := callTxns(strconv.Itoa(i+1)+"-48213@192.0.2.10", kernel)
		if !call {
			txns = txns[:1]
		}
		fromTag := hex(8)
		mono += 2_000_000 + rng.Int64N(500_000)
		for _, t := range txns {
			t.Branch, t.FromTag = "z9hG4bK"+hex(16), fromTag
			t.Worker = rng.IntN(2)
			shift := mono - monoBase
			for j := range t.Msgs {
				m := &t.Msgs[j]
				jitter := rng.Int64N(200_000)
				m.Msg.ID = pkt
				pkt++
				m.Mono += shift + jitter
				m.Msg.Mono += shift + jitter
				m.Wall = wallOf(m.Mono)
			}
			t.Start, t.End = t.Msgs[0].Wall, t.Msgs[len(t.Msgs)-1].Wall
		}
		ops[i] = txns
	}
	return ops
}

// flushEvery bounds the work queued behind Export in a benchmark: Export
// is faster than any upload, and a queue that overflowed would drop (and
// not count the cost of) whole batches, while a long queue is not what a
// proxy sees either (its sender keeps up). 256 calls are about 1.6 MiB:
// one full batch (maxBatchBytes) and a partial one.
const flushEvery = 256

func benchExport(b *testing.B, e *Exporter, ops [][]*evidence.Txn, wire *atomic.Int64) {
	for _, op := range ops {
		for _, t := range op {
			e.Export(t) // warm the address cache and the batch buffers
		}
	}
	if err := e.ForceFlush(context.Background()); err != nil {
		b.Fatal(err)
	}
	wire.Store(0)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for _, t := range ops[n%len(ops)] {
			e.Export(t)
		}
		if n++; n%flushEvery == 0 {
			if err := e.ForceFlush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Flushing is part of the cost: the sender works behind Export.
	if err := e.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(wire.Load())/float64(b.N), "wire-B/op")
	if st := e.Stats(); st.Dropped != 0 || st.ExportFailed != 0 {
		b.Fatalf("spans lost: %+v", st)
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingClient accepts every upload and counts the encoded span bytes.
type countingClient struct{ bytes atomic.Int64 }

func (*countingClient) Start(context.Context) error { return nil }
func (*countingClient) Stop(context.Context) error  { return nil }
func (c *countingClient) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	for _, r := range rs {
		for _, ss := range r.GetScopeSpans() {
			c.bytes.Add(int64(len(ss.ProtoReflect().GetUnknown())))
		}
	}
	return nil
}

// discardCodec is a gRPC server codec that reads no request: the
// benchmarks measure the exporter, not a collector's decoding.
type discardCodec struct{}

func (discardCodec) Marshal(v any) ([]byte, error)      { return proto.Marshal(v.(proto.Message)) }
func (discardCodec) Unmarshal(data []byte, v any) error { return nil }
func (discardCodec) Name() string                       { return "proto" }

// wireCounter counts the bytes of the requests a gRPC server receives.
type wireCounter struct{ n *atomic.Int64 }

func (w *wireCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (w *wireCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	if p, ok := s.(*stats.InPayload); ok {
		w.n.Add(int64(p.WireLength))
	}
}
func (w *wireCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (w *wireCounter) HandleConn(context.Context, stats.ConnStats)                       {}

// BenchmarkTraceID measures the Call-ID hash alone.
func BenchmarkTraceID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = TraceID(benchCallID)
	}
}
