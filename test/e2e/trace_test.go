package e2e

// Traces end to end: SIPp calls through the proxy with eBPF on and
// tracing to a real Jaeger v2, then `sipvigil audit` reads the traces back
// and must find what the proxy did, no more, no less.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// auditReport is the part of `sipvigil audit --json` the tests read.
type auditReport struct {
	Calls            int            `json:"calls"`
	Transactions     int            `json:"transactions"`
	Messages         int            `json:"messages"`
	KernelSharePct   float64        `json:"kernel_share_pct"`
	ViolationCount   int            `json:"violation_count"`
	ViolationsByKind map[string]int `json:"violations_by_kind"`
	QueueWait        struct {
		Count int   `json:"count"`
		Min   int64 `json:"min"`
		P50   int64 `json:"p50"`
		Max   int64 `json:"max"`
	} `json:"queue_wait_ns"`
	ProxyLatency struct {
		Count int   `json:"count"`
		P50   int64 `json:"p50"`
		P99   int64 `json:"p99"`
		Max   int64 `json:"max"`
	} `json:"proxy_latency_kernel_ns"`
	Violations []struct {
		CallID  string `json:"call_id"`
		TraceID string `json:"trace_id"`
		Kind    string `json:"kind"`
	} `json:"violations"`
}

// runAudit runs `sipvigil audit ARGS --json` and decodes the report.
func runAudit(t *testing.T, args ...string) (auditReport, int, string) {
	t.Helper()
	cmd := exec.Command(proxyBin, append(append([]string{"audit"}, args...), "--json")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sipvigil audit: %v", err)
	}
	var r auditReport
	if code != 2 {
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("audit --json output (exit %d) does not decode: %v\n%s\nstderr: %s", code, err, tail(stdout.String(), 40), stderr.String())
		}
	}
	return r, code, stderr.String()
}

// scrape fetches the proxy's metrics in OpenMetrics format.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("scrape %s: %s\n%s", addr, res.Status, b)
	}
	return string(b)
}

// metricValue returns the value of the first sample line starting with
// name{labels} (labels as written, e.g. `kind="request_reorder"`).
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err != nil {
				t.Fatalf("series %s: %q: %v", series, line, err)
			}
			return f
		}
	}
	t.Fatalf("series %s not in the scrape", series)
	return 0
}

// tracedProxy starts Jaeger and a proxy with eBPF on, tracing to Jaeger
// and metrics on a free port. bin "" is the normal build.
func tracedProxy(t *testing.T, bin string, env []string, extra string) (*proxy, *jaegerInstance, string, []int) {
	t.Helper()
	requireBPF(t)
	j := startJaeger(t)
	ports := freePorts(t, "127.0.0.1", 5) // proxy, UAS, UAC, UAC2, metrics
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[4]))
	cfg := proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops: []string{hop("127.0.0.1", ports[1], "udp")},
		Extra: extra + fmt.Sprintf(`ebpf: {mode: on}
tracing: {endpoint: %q, insecure: true, batch_timeout: 200ms, settle: 300ms}
metrics: {listen: %q}
`, j.OTLPHTTPEndpoint(), metricsAddr),
	}
	p, _ := startEBPFProxy(t, cfg, procOpts{Bin: bin, Env: env}, "", false)
	return p, j, metricsAddr, ports
}

// TestTracesAuditClean: 2,000 calls with 180 and 200 back to back, an ACK
// immediately followed by a re-INVITE, and the re-INVITE queue of the
// default recipe (10 ms). The online monitor counts no violation, and
// `sipvigil audit` against Jaeger finds every call, 0 violations, every
// message kernel-stamped, and every queue wait at least the delay.
func TestTracesAuditClean(t *testing.T) {
	const calls = 2000
	p, j, metricsAddr, ports := tracedProxy(t, "", nil, reinviteRecipe)
	uasRun := startSIPp(t, sipp{
		Name: "uas", Scenario: "uas_reinvite.xml", Local: "127.0.0.1", Port: ports[1],
		Calls: calls, Timeout: 90 * time.Second, RRWant: viaProxy,
	})
	uac := runSIPp(t, sipp{
		Name: "uac", Scenario: "uac_ack_reinvite.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr,
		Calls: calls, Rate: 250, Timeout: 80 * time.Second,
	})
	uas := uasRun.wait(t, 10*time.Second)
	expectAllOK(t, uac, calls)
	expectAllOK(t, uas, calls)

	// Let the last transactions settle and export, then check the monitor.
	time.Sleep(time.Second)
	m := scrape(t, metricsAddr)
	for _, kind := range []string{"response_reorder", "provisional_after_final", "request_reorder"} {
		if v := metricValue(t, m, `sipvigil_order_violations_total{kind="`+kind+`"}`); v != 0 {
			t.Errorf("online monitor: %v %s violations, want 0", v, kind)
		}
	}
	exemplar := regexp.MustCompile(`sipvigil_forward_latency_seconds_bucket\{kind="response",le="[^"]+"\} \d+ # \{trace_id="([0-9a-f]{32})"\}`).FindStringSubmatch(m)
	if exemplar == nil {
		t.Errorf("no trace_id exemplar on sipvigil_forward_latency_seconds{kind=\"response\"}")
	}
	stopGracefully(t, p) // flushes the exporter

	// INVITE, ACK, re-INVITE, ACK, BYE: 5 transaction spans per call, plus
	// the re-INVITE's queue-wait span.
	want := calls * 6
	if got := j.WaitSpans(t, "sipvigil", want, 60*time.Second); got < want {
		t.Fatalf("Jaeger holds %d spans, want %d", got, want)
	}
	if exemplar != nil {
		if _, code := j.Trace(t, exemplar[1]); code != 200 {
			t.Errorf("exemplar trace %s: Jaeger answered %d, want 200", exemplar[1], code)
		}
	}
	r, code, stderr := runAudit(t, "--jaeger", j.QueryURL(), "--since", "10m")
	t.Logf("audit: %d calls, %d transactions, %d messages, kernel %.2f%%, violations %d, queue wait min %s p50 %s max %s, proxy latency p50 %s p99 %s max %s (%d forwards)",
		r.Calls, r.Transactions, r.Messages, r.KernelSharePct, r.ViolationCount,
		time.Duration(r.QueueWait.Min), time.Duration(r.QueueWait.P50), time.Duration(r.QueueWait.Max),
		time.Duration(r.ProxyLatency.P50), time.Duration(r.ProxyLatency.P99), time.Duration(r.ProxyLatency.Max), r.ProxyLatency.Count)
	if code != 0 || r.ViolationCount != 0 {
		t.Errorf("audit exit %d with %d violations, want 0 and 0\n%s", code, r.ViolationCount, stderr)
	}
	if r.Calls != calls || r.Transactions != 5*calls {
		t.Errorf("audit saw %d calls and %d transactions, want %d and %d", r.Calls, r.Transactions, calls, 5*calls)
	}
	if r.KernelSharePct != 100 {
		t.Errorf("kernel timestamps on %.3f%% of messages, want 100%%", r.KernelSharePct)
	}
	if r.QueueWait.Count != calls || time.Duration(r.QueueWait.Min) < 10*time.Millisecond {
		t.Errorf("queue waits: %d, min %s; want %d, each >= 10ms (the configured delay)", r.QueueWait.Count, time.Duration(r.QueueWait.Min), calls)
	}
}

// TestTracesAuditFindsInjectedSwaps: a binary built with -tags faultinject
// sends the 180 after the 200 for calls whose Call-ID starts with
// "fault-swap-". 300 normal calls and 60 such calls run at once; the online
// monitor must count exactly 60 provisional_after_final violations and the
// audit must list exactly those 60 calls: no misses, no false positives.
func TestTracesAuditFindsInjectedSwaps(t *testing.T) {
	const normal, faulty = 300, 60
	needProxy(t)
	bin := filepath.Join(t.TempDir(), "sipvigil-faultinject")
	build := exec.Command("go", "build", "-tags", "faultinject", "-o", bin, "sipvigil/cmd/sipvigil")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build faultinject binary: %v\n%s", err, out)
	}
	p, j, metricsAddr, ports := tracedProxy(t, bin, []string{"SIPVIGIL_FAULT_SWAP_1XX_2XX=fault-swap-"}, "")
	uasRun := startSIPp(t, sipp{
		Name: "uas", Scenario: "uas_basic.xml", Local: "127.0.0.1", Port: ports[1],
		Calls: normal + faulty, Timeout: 60 * time.Second, RRWant: viaProxy,
	})
	faultRun := startSIPp(t, sipp{
		Name: "uac-fault", Scenario: "uac_basic.xml", Local: "127.0.0.1", Port: ports[3], Remote: p.Addr,
		Calls: faulty, Rate: 30, Timeout: 40 * time.Second,
		// The late 180 arrives after the UAC has its 200: ignore it.
		Extra: []string{"-cid_str", "fault-swap-%u-%p@%s", "-pause_msg_ign"},
	})
	uac := runSIPp(t, sipp{
		Name: "uac", Scenario: "uac_basic.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr,
		Calls: normal, Rate: 100, Timeout: 40 * time.Second,
	})
	fr := faultRun.wait(t, 30*time.Second)
	uasRun.wait(t, 10*time.Second)
	expectAllOK(t, uac, normal)
	t.Logf("faulty UAC (the late 180 may abort its calls; only the proxy's side matters here): %s", fr)

	time.Sleep(time.Second)
	m := scrape(t, metricsAddr)
	if v := metricValue(t, m, `sipvigil_order_violations_total{kind="provisional_after_final"}`); v != faulty {
		t.Errorf("online monitor counted %v provisional_after_final, want exactly %d", v, faulty)
	}
	for _, kind := range []string{"response_reorder", "request_reorder"} {
		if v := metricValue(t, m, `sipvigil_order_violations_total{kind="`+kind+`"}`); v != 0 {
			t.Errorf("online monitor counted %v %s, want 0", v, kind)
		}
	}
	stopGracefully(t, p)
	// INVITE, ACK, BYE per normal call; a faulty call may end after its
	// INVITE and ACK when SIPp aborts on the late 180.
	want := normal*3 + faulty*2
	if got := j.WaitSpans(t, "sipvigil", want, 60*time.Second); got < want {
		t.Fatalf("Jaeger holds %d spans, want %d", got, want)
	}
	r, code, stderr := runAudit(t, "--jaeger", j.QueryURL(), "--since", "10m")
	if code != 1 {
		t.Errorf("audit exit %d, want 1 (violations)\n%s", code, stderr)
	}
	calls := map[string]bool{}
	for _, v := range r.Violations {
		if v.Kind != "provisional_after_final" {
			t.Errorf("call %s: violation %s, want only provisional_after_final", v.CallID, v.Kind)
		}
		if !strings.HasPrefix(v.CallID, "fault-swap-") {
			t.Errorf("false positive: call %s reported (%s)", v.CallID, v.Kind)
		}
		calls[v.CallID] = true
	}
	if len(calls) != faulty || r.ViolationCount != faulty {
		ids := make([]string, 0, len(calls))
		for id := range calls {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		t.Errorf("audit reported %d violations in %d calls, want %d in %d: %v", r.ViolationCount, len(calls), faulty, faulty, ids)
	}
	if r.Calls != normal+faulty {
		t.Errorf("audit saw %d calls, want %d", r.Calls, normal+faulty)
	}

	// The ladder of one faulty call shows the 200 before the 180.
	var one string
	for id := range calls {
		one = id
		break
	}
	if one != "" {
		out, err := exec.Command(proxyBin, "audit", "--jaeger", j.QueryURL(), "--call", one).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("audit --call %s: %v, want exit 1\n%s", one, err, out)
		}
		text := string(out)
		i200, i180 := strings.Index(text, "200"), strings.LastIndex(text, "180")
		if i200 < 0 || i180 < 0 || i180 < i200 {
			t.Errorf("ladder of %s does not show the 180 leaving after the 200:\n%s", one, text)
		}
	}
}
