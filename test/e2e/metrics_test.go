package e2e

// Metrics end to end: a real Prometheus (Debian's 2.42) scrapes the proxy
// while SIPp drives calls through it, then every expression of every
// shipped dashboard is evaluated through Prometheus's HTTP API.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sipvigil/dashboards"
)

// needPrometheus returns the prometheus and promtool paths; with CI=true a
// missing binary fails the test, elsewhere it skips.
func needPrometheus(t *testing.T) (prom, promtool string) {
	t.Helper()
	prom, err1 := exec.LookPath("prometheus")
	promtool, err2 := exec.LookPath("promtool")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus/promtool not installed (CI=true): .ci/deps.sh installs Debian's prometheus package")
		}
		t.Skip("prometheus/promtool not installed: apt-get install prometheus")
	}
	return prom, promtool
}

// promInstance is a Prometheus scraping one target, on loopback, with a
// temporary TSDB.
type promInstance struct {
	url string
	cmd *exec.Cmd
	log string
}

func startPrometheus(t *testing.T, prom, promtool, target string) *promInstance {
	t.Helper()
	dir := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(root, "dashboards", "alerts.yml")
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: sipvigil
    static_configs: [{targets: [%q]}]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	port := freePorts(t, "127.0.0.1", 1)[0]
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p := &promInstance{url: "http://" + addr, log: filepath.Join(dir, "prometheus.log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(prom, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--enable-feature=exemplar-storage", "--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		stopProcess(p.cmd, exited, syscall.SIGTERM, 5*time.Second)
		if t.Failed() {
			t.Logf("---- prometheus log ----\n%s", tail(readFile(p.log), 40))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(p.url + "/-/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 15s: %v\n%s", err, readFile(p.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promResult is an instant-query answer.
type promResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

func (p *promInstance) query(t *testing.T, expr string) promResult {
	t.Helper()
	res, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var r promResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("query %s: %v\n%s", expr, err, body)
	}
	return r
}

// allZero reports whether every sample of r is 0 (or NaN: a ratio over an
// idle window).
func (r promResult) allZero() bool {
	for _, s := range r.Data.Result {
		v, _ := s.Value[1].(string)
		if v != "0" && v != "NaN" {
			return false
		}
	}
	return true
}

// grafanaMacros replaces the Grafana variables and macros the dashboards use
// with what a Grafana on this Prometheus would send.
func grafanaMacros(expr string) string {
	return strings.NewReplacer(
		"$__rate_interval", "1m",
		"${__rate_interval}", "1m",
		"$__interval", "15s",
		"${__interval}", "15s",
		"$__range", "5m",
		"${__range}", "5m",
		"$instance", ".*",
		"${instance}", ".*",
	).Replace(expr)
}

// TestMetricsDashboardsAgainstPrometheus: 1,200 calls (180/200 back to
// back, ACK + immediate re-INVITE, the 10 ms re-INVITE queue) through the
// proxy while Prometheus scrapes it every second. A live scrape passes
// `promtool check metrics`; then every dashboard expression must parse and
// return data, except the ones listed as empty when healthy, which must
// return an empty vector or zeros.
func TestMetricsDashboardsAgainstPrometheus(t *testing.T) {
	const calls = 1200
	prom, promtool := needPrometheus(t)
	needProxy(t)
	ports := freePorts(t, "127.0.0.1", 5) // proxy, UAS, UAC, metrics, OPTIONS responder
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[3]))
	answerOptions(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[4])))
	// Every feature a panel shows is in use, so every panel must have data:
	// calls are routed by an HTTP lookup (lookup panels) to the UAS; a
	// destination set is probed every 200 ms against a responder that
	// answers OPTIONS (next-hop panels); traces go to an OTLP sink (span
	// panels); re-INVITEs wait in the 10 ms queue (queue panels); eBPF is
	// on when the test may load it (eBPF panels).
	uasHop := hop("127.0.0.1", ports[1], "udp")
	lookupSrv := newLookupServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"hops": [%q]}`, uasHop)
	})
	otlpSink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(otlpSink.Close)
	routes := lookupRoutes + fmt.Sprintf(`destinations:
  probed:
    hops: [%q]
    probe: {enabled: true, interval: 200ms, timeout: 100ms}
`, hop("127.0.0.1", ports[4], "udp"))
	ebpfMode := "off"
	if os.Geteuid() == 0 {
		requireBPF(t)
		ebpfMode = "on"
	}
	p := startProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Routes: routes,
		Extra: reinviteRecipe + lookupYAML(lookupSrv.URL, time.Second) + fmt.Sprintf(`metrics: {listen: %q}
tracing: {endpoint: %q, batch_timeout: 200ms}
ebpf: {mode: %s}
`, metricsAddr, otlpSink.URL, ebpfMode),
	})
	pi := startPrometheus(t, prom, promtool, metricsAddr)

	uasRun := startSIPp(t, sipp{
		Name: "uas", Scenario: "uas_reinvite.xml", Local: "127.0.0.1", Port: ports[1],
		Calls: calls, Timeout: 60 * time.Second, RRWant: viaProxy,
	})
	uac := runSIPp(t, sipp{
		Name: "uac", Scenario: "uac_ack_reinvite.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr,
		Calls: calls, Rate: 150, Timeout: 50 * time.Second,
	})
	uasRun.wait(t, 10*time.Second)
	expectAllOK(t, uac, calls)
	time.Sleep(3 * time.Second) // a few more scrapes after the last call

	// promtool check metrics reads the text format.
	res, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrapeText, _ := io.ReadAll(res.Body)
	res.Body.Close()
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(scrapeText)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	if r := pi.query(t, `sum(sipvigil_requests_total{method="INVITE",direction="in"})`); len(r.Data.Result) == 0 {
		t.Fatalf("Prometheus has no sipvigil_requests_total after %d calls: %+v", calls, r)
	}
	exprs := dashboards.Expressions()
	if len(exprs) == 0 {
		t.Fatal("dashboards.Expressions() is empty")
	}
	var empty, data int
	for _, e := range exprs {
		q := grafanaMacros(e.Expr)
		r := pi.query(t, q)
		where := fmt.Sprintf("%s / %q: %s", e.Dashboard, e.Panel, q)
		if r.Status != "success" {
			t.Errorf("%s: %s %s", where, r.ErrorType, r.Error)
			continue
		}
		if e.Requires == dashboards.RequiresEBPF && ebpfMode == "off" {
			continue // not root: the eBPF panels are empty by design
		}
		if e.Optional {
			continue // parses (checked above); data only on some setups
		}
		if e.ExpectEmptyWhenHealthy {
			empty++
			if !r.allZero() {
				t.Errorf("%s: want an empty vector or zeros on a healthy run, got %+v", where, r.Data.Result)
			}
			continue
		}
		data++
		if len(r.Data.Result) == 0 {
			t.Errorf("%s: no data", where)
		}
	}
	t.Logf("%d dashboard expressions: %d returned data, %d empty as expected on a healthy run", len(exprs), data, empty)
}

// answerOptions runs a UDP responder on addr that answers every OPTIONS
// with 200 OK (Via, From, To, Call-ID and CSeq copied), until the test ends.
func answerOptions(t *testing.T, addr string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			if !strings.HasPrefix(msg, "OPTIONS ") {
				continue
			}
			var b strings.Builder
			b.WriteString("SIP/2.0 200 OK\r\n")
			for _, line := range strings.Split(msg, "\r\n")[1:] {
				if line == "" {
					break
				}
				name := strings.ToLower(strings.TrimSpace(line[:max(strings.IndexByte(line, ':'), 0)]))
				switch name {
				case "via", "v", "from", "f", "call-id", "i", "cseq":
					b.WriteString(line + "\r\n")
				case "to", "t":
					b.WriteString(line + ";tag=opt\r\n")
				}
			}
			b.WriteString("Content-Length: 0\r\n\r\n")
			_, _ = pc.WriteTo([]byte(b.String()), from)
		}
	}()
}
