package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A real Jaeger v2 trace backend for the end-to-end tests: bin/jaeger,
// built by `make jaeger` from its own Go module in tools/jaeger (see
// tools/jaeger/README.md), run with tools/jaeger/jaeger-test.yaml
// (in-memory storage, OTLP in, query API out, every port on 127.0.0.1).
//
// Tests send spans to OTLPHTTPEndpoint() and read them back through the
// query API (/api/v3, which answers OTLP JSON).

// jaegerInstance is one running Jaeger; startJaeger stops it at test end.
type jaegerInstance struct {
	OTLPHTTPPort  int
	OTLPGRPCPort  int
	QueryPort     int
	QueryGRPCPort int
	HealthPort    int
	// Ready is the time from exec to a healthy status and an OTLP/HTTP
	// port that accepts connections.
	Ready time.Duration

	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	client  *http.Client
}

// jaegerPaths returns the Jaeger binary and the test config, both found
// from the repository root (the main module's go.mod above the test's
// working directory). JAEGER_BIN overrides the binary.
func jaegerPaths(t *testing.T) (bin, cfg string) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	bin = os.Getenv("JAEGER_BIN")
	if bin == "" {
		bin = filepath.Join(root, "bin", "jaeger")
	}
	cfg = filepath.Join(root, "tools", "jaeger", "jaeger-test.yaml")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Jaeger binary %s: %v; CI=true: build it with `make jaeger` before go test", bin, err)
		}
		t.Skipf("Jaeger binary %s not found: run make jaeger (set CI=true to make this a failure)", bin)
	}
	if _, err := os.Stat(cfg); err != nil {
		t.Fatalf("Jaeger test config: %v", err)
	}
	return bin, cfg
}

// startJaeger starts bin/jaeger on free loopback ports with the test
// config, waits until its health endpoint answers 200 and its OTLP/HTTP
// port accepts connections, and registers cleanup that stops it (SIGTERM,
// SIGKILL after 5 s) and, if the test failed, prints the tail of its log.
func startJaeger(t *testing.T) *jaegerInstance {
	t.Helper()
	bin, cfg := jaegerPaths(t)

	ports := freePorts(t, "127.0.0.1", 5)
	j := &jaegerInstance{
		OTLPHTTPPort:  ports[0],
		OTLPGRPCPort:  ports[1],
		QueryPort:     ports[2],
		QueryGRPCPort: ports[3],
		HealthPort:    ports[4],
		logPath:       filepath.Join(t.TempDir(), "jaeger.log"),
		exited:        make(chan struct{}),
		client:        &http.Client{Timeout: 10 * time.Second},
	}
	logf, err := os.Create(j.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config="+cfg)
	cmd.Env = append(os.Environ(),
		"JAEGER_OTLP_HTTP_PORT="+strconv.Itoa(j.OTLPHTTPPort),
		"JAEGER_OTLP_GRPC_PORT="+strconv.Itoa(j.OTLPGRPCPort),
		"JAEGER_QUERY_PORT="+strconv.Itoa(j.QueryPort),
		"JAEGER_QUERY_GRPC_PORT="+strconv.Itoa(j.QueryGRPCPort),
		"JAEGER_HEALTH_PORT="+strconv.Itoa(j.HealthPort),
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	j.cmd = cmd
	go func() { _ = cmd.Wait(); logf.Close(); close(j.exited) }()

	t.Cleanup(func() {
		select {
		case <-j.exited:
			t.Errorf("jaeger exited during the test: %v", cmd.ProcessState)
		default:
			stopProcess(cmd, j.exited, syscall.SIGTERM, 5*time.Second)
		}
		if t.Failed() {
			t.Logf("---- jaeger log (%s) ----\n%s", j.logPath, tail(readFile(j.logPath), 60))
		}
	})

	health := fmt.Sprintf("http://127.0.0.1:%d/status", j.HealthPort)
	otlp := j.OTLPHTTPEndpoint()
	deadline := time.Now().Add(30 * time.Second)
	for !j.healthy(health) || !accepts(otlp) {
		select {
		case <-j.exited:
			t.Fatalf("jaeger exited before it was ready: %v\n%s", cmd.ProcessState, tail(readFile(j.logPath), 60))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger not ready within 30s (%s 200 and %s accepting)\n%s", health, otlp, tail(readFile(j.logPath), 60))
		}
	}
	j.Ready = time.Since(start)
	return j
}

func (j *jaegerInstance) healthy(statusURL string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(statusURL)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// accepts reports whether a TCP connection to addr succeeds.
func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// OTLPHTTPEndpoint is the OTLP/HTTP receiver as host:port (no scheme, as
// otlptracehttp.WithEndpoint takes it); spans go to /v1/traces there.
func (j *jaegerInstance) OTLPHTTPEndpoint() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(j.OTLPHTTPPort))
}

// OTLPGRPCEndpoint is the OTLP/gRPC receiver as host:port.
func (j *jaegerInstance) OTLPGRPCEndpoint() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(j.OTLPGRPCPort))
}

// QueryURL is the base URL of the query HTTP API.
func (j *jaegerInstance) QueryURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(j.QueryPort))
}

// RSS is the resident set size of the Jaeger process in bytes (0 if
// unknown).
func (j *jaegerInstance) RSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", j.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// get fetches QueryURL()+path and returns body and status; transport
// errors fail the test.
func (j *jaegerInstance) get(t *testing.T, path string) ([]byte, int) {
	t.Helper()
	resp, err := j.client.Get(j.QueryURL() + path)
	if err != nil {
		t.Fatalf("jaeger query GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("jaeger query GET %s: reading body: %v", path, err)
	}
	return body, resp.StatusCode
}

// Services lists the service names Jaeger has stored spans for
// (GET /api/v3/services).
func (j *jaegerInstance) Services(t *testing.T) []string {
	t.Helper()
	body, code := j.get(t, "/api/v3/services")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v3/services: HTTP %d: %s", code, truncate(body, 500))
	}
	var r struct {
		Services []string `json:"services"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("GET /api/v3/services: %v: %s", err, truncate(body, 500))
	}
	return r.Services
}

// Trace fetches one trace by its 32-hex-digit ID as stored, without
// Jaeger's adjusters (GET /api/v3/traces/{id}?raw_traces=true). It returns
// the OTLP JSON body ({"result":{"resourceSpans":[...]}}) and the HTTP
// status: 404 when Jaeger has no such trace.
func (j *jaegerInstance) Trace(t *testing.T, traceIDHex string) ([]byte, int) {
	t.Helper()
	return j.get(t, "/api/v3/traces/"+url.PathEscape(traceIDHex)+"?raw_traces=true")
}

// WaitSpans polls the trace search of service (spans started within the
// last hour) until it counts at least minSpans spans or timeout passes, and
// returns the last count. It does not fail the test: callers assert on
// the count, so that they can also expect "no more than".
func (j *jaegerInstance) WaitSpans(t *testing.T, service string, minSpans int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	n := 0
	for {
		n = j.countSpans(t, service)
		if n >= minSpans || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countSpans runs one /api/v3/traces search and counts the spans in it.
// No match is a 404 (or an empty result), i.e. 0 spans.
func (j *jaegerInstance) countSpans(t *testing.T, service string) int {
	t.Helper()
	now := time.Now().UTC()
	q := url.Values{}
	q.Set("query.service_name", service)
	q.Set("query.start_time_min", now.Add(-time.Hour).Format(time.RFC3339Nano))
	// a little slack for spans stamped just after the request is built
	q.Set("query.start_time_max", now.Add(time.Minute).Format(time.RFC3339Nano))
	// without num_traces the v3 search answers HTTP 500
	q.Set("query.num_traces", "100000")
	q.Set("query.raw_traces", "true")
	body, code := j.get(t, "/api/v3/traces?"+q.Encode())
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		return 0
	default:
		t.Fatalf("jaeger trace search for %q: HTTP %d: %s", service, code, truncate(body, 500))
	}
	n, err := otlpSpanCount(body)
	if err != nil {
		t.Fatalf("jaeger trace search for %q: %v: %s", service, err, truncate(body, 500))
	}
	return n
}

// otlpSpanCount counts the spans in a query API answer: one or more
// concatenated {"result":{"resourceSpans":[{"scopeSpans":[{"spans":[...]}]}]}}
// objects.
func otlpSpanCount(body []byte) (int, error) {
	n := 0
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var r struct {
			Result struct {
				ResourceSpans []struct {
					ScopeSpans []struct {
						Spans []json.RawMessage `json:"spans"`
					} `json:"scopeSpans"`
				} `json:"resourceSpans"`
			} `json:"result"`
		}
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			return n, nil
		} else if err != nil {
			return n, err
		}
		for _, rs := range r.Result.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				n += len(ss.Spans)
			}
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// randHex returns n random bytes as lowercase hex (trace IDs: 16, span
// IDs: 8).
func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestJaegerBackend checks the Jaeger helpers themselves: one span sent as
// hand-written OTLP JSON over OTLP/HTTP comes back through Trace,
// WaitSpans and Services, and an unknown trace ID is a 404.
func TestJaegerBackend(t *testing.T) {
	j := startJaeger(t)
	t.Logf("jaeger ready in %s, RSS %.1f MiB; OTLP/HTTP %s, query %s",
		j.Ready.Round(time.Millisecond), float64(j.RSS())/(1<<20), j.OTLPHTTPEndpoint(), j.QueryURL())

	service := "sipvigil-e2e-" + randHex(t, 4)
	traceID, spanID := randHex(t, 16), randHex(t, 8)
	end := time.Now()
	startNs := strconv.FormatInt(end.Add(-5*time.Millisecond).UnixNano(), 10)
	endNs := strconv.FormatInt(end.UnixNano(), 10)
	// OTLP/JSON: IDs are hex, 64-bit integers are strings, kind 2 = server.
	payload := `{"resourceSpans":[{
  "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"` + service + `"}}]},
  "scopeSpans":[{
    "scope":{"name":"sipvigil/test/e2e"},
    "spans":[{
      "traceId":"` + traceID + `","spanId":"` + spanID + `",
      "name":"INVITE","kind":2,
      "startTimeUnixNano":"` + startNs + `","endTimeUnixNano":"` + endNs + `",
      "attributes":[{"key":"sip.method","value":{"stringValue":"INVITE"}}],
      "status":{}
    }]
  }]
}]}`
	resp, err := http.Post("http://"+j.OTLPHTTPEndpoint()+"/v1/traces", "application/json", strings.NewReader(payload))
	if err != nil {
		t.Fatalf("OTLP/HTTP export: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP export: HTTP %d: %s", resp.StatusCode, body)
	}

	sent := time.Now()
	if n := j.WaitSpans(t, service, 1, 10*time.Second); n != 1 {
		t.Fatalf("WaitSpans(%q): %d spans, want 1", service, n)
	}
	t.Logf("span searchable %s after the export", time.Since(sent).Round(time.Millisecond))

	tr, code := j.Trace(t, traceID)
	if code != http.StatusOK {
		t.Fatalf("Trace(%s): HTTP %d: %s", traceID, code, truncate(tr, 500))
	}
	if n, err := otlpSpanCount(tr); err != nil || n != 1 {
		t.Errorf("Trace(%s): %d spans (err %v), want 1: %s", traceID, n, err, truncate(tr, 2000))
	}
	for _, want := range []string{traceID, spanID, `"INVITE"`, `"sip.method"`, service} {
		if !bytes.Contains(bytes.ToLower(tr), []byte(strings.ToLower(want))) {
			t.Errorf("Trace(%s) lacks %s: %s", traceID, want, truncate(tr, 2000))
		}
	}

	if svcs := j.Services(t); !slices.Contains(svcs, service) {
		t.Errorf("Services() = %q, want it to contain %q", svcs, service)
	}

	if b, code := j.Trace(t, randHex(t, 16)); code != http.StatusNotFound {
		t.Errorf("Trace(unknown id): HTTP %d, want 404: %s", code, truncate(b, 500))
	}
}
