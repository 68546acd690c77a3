package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP endpoint: it counts POSTs to /v1/traces,
// which of them are gzip-compressed, and decodes them (protobuf
// ExportTraceServiceRequest) to count the spans.
type collector struct {
	status    atomic.Int32 // response status; 0 means 200
	posts     atomic.Int64
	gzipped   atomic.Int64
	badReq    atomic.Int64
	badBody   atomic.Int64 // bodies that did not decode
	spans     atomic.Int64
	tenant    atomic.Int64 // requests carrying X-Tenant: t1
	protoType atomic.Int64 // requests with Content-Type application/x-protobuf
	hold      chan struct{}
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		c.badReq.Add(1)
		http.NotFound(w, r)
		return
	}
	c.posts.Add(1)
	if r.Header.Get("X-Tenant") == "t1" {
		c.tenant.Add(1)
	}
	if r.Header.Get("Content-Type") == "application/x-protobuf" {
		c.protoType.Add(1)
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			c.badBody.Add(1)
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		c.gzipped.Add(1)
		body = zr
	}
	raw, err := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(raw, &req)
	}
	if err != nil {
		c.badBody.Add(1)
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	if c.hold != nil {
		select {
		case <-c.hold:
		case <-r.Context().Done():
			return
		}
	}
	if s := c.status.Load(); s != 0 {
		http.Error(w, "collector says no", int(s))
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestOTLPHTTPEndToEnd(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	if !strings.HasPrefix(srv.Listener.Addr().String(), "127.0.0.1:") {
		t.Fatalf("test server on %s, want loopback", srv.Listener.Addr())
	}
	for _, cfg := range []Config{
		{Endpoint: srv.URL}, // URL without a path: /v1/traces
		{Endpoint: srv.Listener.Addr().String(), Insecure: true}, // host:port
		{Endpoint: srv.URL + "/v1/traces", Compression: "gzip"},  // explicit path
	} {
		cfg.Headers = map[string]string{"X-Tenant": "t1"}
		cfg.BatchTimeout = 10 * time.Millisecond
		before := col.posts.Load()
		e, err := New(context.Background(), cfg, "v-test", testLogger(t))
		if err != nil {
			t.Fatalf("New(%s): %v", cfg.Endpoint, err)
		}
		for i := range 25 {
			e.Export(inviteTxn("http-"+strconv.Itoa(i), true))
		}
		if err := e.ForceFlush(context.Background()); err != nil {
			t.Errorf("%s: ForceFlush: %v", cfg.Endpoint, err)
		}
		if err := e.Shutdown(context.Background()); err != nil {
			t.Errorf("%s: Shutdown: %v", cfg.Endpoint, err)
		}
		if st := e.Stats(); st.Spans != 25 || st.Exported != 25 || st.ExportFailed != 0 {
			t.Errorf("%s: stats %+v, want 25 exported", cfg.Endpoint, st)
		}
		if col.posts.Load() == before {
			t.Errorf("%s: no POST reached the collector", cfg.Endpoint)
		}
	}
	if gz := col.gzipped.Load(); gz == 0 {
		t.Errorf("no POST gzip-encoded; the gzip endpoint should be")
	}
	if n, h := col.posts.Load(), col.tenant.Load(); h != n {
		t.Errorf("%d of %d POSTs carry the configured header", h, n)
	}
	if n, p := col.posts.Load(), col.protoType.Load(); p != n {
		t.Errorf("%d of %d POSTs are application/x-protobuf", p, n)
	}
	if b := col.badReq.Load(); b != 0 {
		t.Errorf("%d requests to the wrong method or path", b)
	}
	if b, n := col.badBody.Load(), col.spans.Load(); b != 0 || n != 75 {
		t.Errorf("%d bodies did not decode; %d spans decoded, want 75", b, n)
	}

	// Compression none: no Content-Encoding.
	plain := &collector{}
	srv2 := httptest.NewServer(plain)
	defer srv2.Close()
	e, err := New(context.Background(), Config{Endpoint: srv2.URL, Compression: CompressionNone}, "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Export(inviteTxn("plain", false))
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if plain.posts.Load() == 0 || plain.gzipped.Load() != 0 || plain.spans.Load() != 1 || plain.badBody.Load() != 0 {
		t.Errorf("compression none: %d posts, %d gzipped, %d spans, %d bad bodies",
			plain.posts.Load(), plain.gzipped.Load(), plain.spans.Load(), plain.badBody.Load())
	}
}

// A collector that fails: the spans are counted as lost, ForceFlush says
// so, and Export goes on.
func TestOTLPExportErrors(t *testing.T) {
	col := &collector{}
	col.status.Store(http.StatusInternalServerError)
	srv := httptest.NewServer(col)
	defer srv.Close()
	// Two full batches go out during the Exports; the last 8 spans wait
	// for ForceFlush, which must see them fail.
	e, err := New(context.Background(), Config{Endpoint: srv.URL, BatchTimeout: time.Hour, BatchSize: 16}, "v", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Shutdown(context.Background()) }()
	for i := range 40 {
		e.Export(inviteTxn("fail-"+strconv.Itoa(i), true))
	}
	err = e.ForceFlush(context.Background())
	if err == nil || !strings.Contains(err.Error(), "lost to export errors") {
		t.Errorf("ForceFlush after failed exports: %v", err)
	}
	st := e.Stats()
	if st.Spans != 40 || st.ExportFailed != 40 || st.Exported != 0 {
		t.Errorf("stats %+v, want 40 spans, all failed", st)
	}
	if col.posts.Load() == 0 {
		t.Error("no export attempted")
	}

	// The collector recovers: new spans go through.
	col.status.Store(0)
	for i := range 5 {
		e.Export(inviteTxn("ok-"+strconv.Itoa(i), true))
	}
	if err := e.ForceFlush(context.Background()); err != nil {
		t.Errorf("ForceFlush after recovery: %v", err)
	}
	if st := e.Stats(); st.Exported != 5 || st.ExportFailed != 40 {
		t.Errorf("stats after recovery %+v", st)
	}
}

// A collector that hangs: Export never waits for it. Batches queue up to
// the queue size, later ones are dropped and counted, and a Shutdown that
// runs out of time accounts for every span.
func TestOTLPHungCollector(t *testing.T) {
	col := &collector{hold: make(chan struct{})}
	srv := httptest.NewServer(col)
	defer srv.Close()
	defer close(col.hold) // before srv.Close (defers run last-in first-out)
	e, err := New(context.Background(), Config{
		Endpoint: srv.URL, QueueSize: 4, BatchSize: 2,
		BatchTimeout: time.Hour, ExportTimeout: 10 * time.Second,
	}, "v", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	var maxBlock time.Duration
	for i := range n {
		t0 := time.Now()
		e.Export(inviteTxn("hang-"+strconv.Itoa(i), true))
		maxBlock = max(maxBlock, time.Since(t0))
	}
	if maxBlock > 100*time.Millisecond {
		t.Errorf("Export blocked %v on a hung collector", maxBlock)
	}
	// At most one batch in flight and QueueSize spans queued.
	if st := e.Stats(); st.Spans != n || st.Dropped < n-2-4 || st.Exported+st.ExportFailed != 0 {
		t.Errorf("stats %+v: want %d spans, at least %d dropped", st, n, n-6)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if err := e.Shutdown(ctx); err == nil {
		t.Error("Shutdown succeeded with a hung collector")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Shutdown took %v past its deadline", d)
	}
	st := e.Stats()
	if st.Spans != n || st.Exported+st.ExportFailed+st.Dropped != n || st.Exported != 0 {
		t.Errorf("stats %+v: spans not all accounted for", st)
	}
}

// A retryable answer (503): the client retries with the same body.
func TestOTLPHTTPRetry(t *testing.T) {
	col := &collector{}
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		col.ServeHTTP(w, r)
	}))
	defer srv.Close()
	e, err := New(context.Background(), Config{Endpoint: srv.URL, ExportTimeout: time.Second, Compression: CompressionGzip}, "v", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.Export(inviteTxn("retry-"+strconv.Itoa(i), true))
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if st := e.Stats(); st.Exported != 3 || calls.Load() != 2 || col.gzipped.Load() != 1 || col.spans.Load() != 3 {
		t.Errorf("stats %+v, %d calls, collector: %d gzipped, %d spans", st, calls.Load(), col.gzipped.Load(), col.spans.Load())
	}
}

// TLS from files: a CA to trust and a client certificate for mTLS.
func TestOTLPHTTPMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	serverCert := newLeaf(t, ca, caKey, "server", true)
	clientCert := newLeaf(t, ca, caKey, "client", false)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", clientCert.Certificate[0])
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writePEM(t, dir, "client.key", "PRIVATE KEY", keyDER)

	col := &collector{}
	srv := httptest.NewUnstartedServer(col)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	url := "https://" + srv.Listener.Addr().String()

	// gzip goes through gzipTransport's own http.Transport, none through
	// the client's: both must use the TLS files.
	for i, comp := range []string{CompressionGzip, CompressionNone} {
		e, err := New(context.Background(), Config{Endpoint: url, CAFile: caFile, CertFile: certFile, KeyFile: keyFile, Compression: comp}, "v", nil)
		if err != nil {
			t.Fatal(err)
		}
		e.Export(inviteTxn("tls", true))
		if err := e.Shutdown(context.Background()); err != nil {
			t.Errorf("mTLS export (%s): %v", comp, err)
		}
		if st := e.Stats(); st.Exported != 1 || col.posts.Load() != int64(i+1) || col.spans.Load() != int64(i+1) {
			t.Errorf("mTLS (%s): stats %+v, posts %d, spans %d", comp, st, col.posts.Load(), col.spans.Load())
		}
	}

	// Without the client certificate the server refuses the handshake.
	e, err := New(context.Background(), Config{Endpoint: url, CAFile: caFile, ExportTimeout: 2 * time.Second}, "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Export(inviteTxn("tls", true))
	if err := e.Shutdown(context.Background()); err == nil {
		t.Error("export without client certificate succeeded")
	}
	if st := e.Stats(); st.ExportFailed != 1 {
		t.Errorf("stats without client certificate %+v", st)
	}
}

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	requests, spans, tenant atomic.Int64
}

func (s *traceService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.requests.Add(1)
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("x-tenant")) == 1 && md.Get("x-tenant")[0] == "t1" {
		s.tenant.Add(1)
	}
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			s.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func TestOTLPGRPCEndToEnd(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &traceService{}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, svc)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	e, err := New(context.Background(), Config{
		Endpoint: "http://" + lis.Addr().String(), Protocol: ProtocolGRPC,
		Headers: map[string]string{"X-Tenant": "t1"}, BatchTimeout: 10 * time.Millisecond,
	}, "v", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		e.Export(inviteTxn("grpc-"+strconv.Itoa(i), true))
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if st := e.Stats(); st.Exported != 10 || svc.spans.Load() != 10 {
		t.Errorf("stats %+v, collector got %d spans", st, svc.spans.Load())
	}
	if svc.requests.Load() == 0 || svc.tenant.Load() != svc.requests.Load() {
		t.Errorf("%d requests, %d with the header", svc.requests.Load(), svc.tenant.Load())
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sipvigil test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func newLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := pem.Encode(&b, &pem.Block{Type: typ, Bytes: der}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
