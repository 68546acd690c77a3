package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process-wide state prepared by TestMain.
var (
	sippPath   string // absolute path of sipp, "" when unavailable
	skipReason string // why SIPp tests are skipped ("" = run them)
	proxyBin   string // built sipvigil binary
	buildErr   error  // build failure, reported by every proxy test
	buildOut   []byte
	testdata   string // absolute path of testdata/
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	testdata = filepath.Join(wd, "testdata")

	if p, err := exec.LookPath("sipp"); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: FATAL: sipp not found on PATH and CI=true; install SIPp (Debian/Ubuntu package sip-tester)")
			return 1
		}
		skipReason = "sipp not found on PATH (install SIPp, Debian/Ubuntu package sip-tester); set CI=true to make this a failure"
	} else {
		sippPath = p
	}

	tmp, err := os.MkdirTemp("", "sipvigil-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if skipReason == "" {
		// Build once for the whole package, from the module root, so the
		// tests exercise exactly the code in this tree.
		root, err := moduleRoot(wd)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		proxyBin = filepath.Join(tmp, "sipvigil")
		cmd := exec.Command("go", "build", "-o", proxyBin, "sipvigil/cmd/sipvigil")
		cmd.Dir = root
		buildOut, buildErr = cmd.CombinedOutput()
		if buildErr != nil {
			// Not fatal here: the direct (proxy-less) scenario checks still
			// run; every proxy test fails with this output.
			fmt.Fprintf(os.Stderr, "e2e: building sipvigil failed: %v\n%s\n", buildErr, buildOut)
		}
	}
	return m.Run()
}

// moduleRoot walks up from dir to the directory holding go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}

// needSIPp skips the test when SIPp is not installed (TestMain already
// turned that into a hard failure when CI=true).
func needSIPp(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// needProxy is needSIPp plus a built sipvigil binary.
func needProxy(t *testing.T) {
	t.Helper()
	needSIPp(t)
	if buildErr != nil {
		t.Fatalf("go build sipvigil/cmd/sipvigil failed: %v\n%s", buildErr, buildOut)
	}
}

// ---------------------------------------------------------------- ports

var (
	portsMu sync.Mutex
	used    = map[int]bool{} // never hand out the same port twice per run
)

// freePorts returns n ports on host that are currently free for BOTH udp
// and tcp (SIPp and the proxy may use either on the same number).
//
// The ports come from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), never from a port-0 bind: between the
// probe and the real bind, any outgoing TCP connection or port-0 socket of
// a parallel test could otherwise be given the same number. Nothing the
// tests run binds a fixed port in that range on its own (SIPp's own media
// and control sockets sit at 6000+ and 8888+), and handed-out ports are
// remembered so this process never hands one out twice. Probing by bind is
// safe here only because no one is about to bind these ports yet; waiting
// for a process to take its port uses listeningOn, which never binds.
func freePorts(t *testing.T, host string, n int) []int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := 10000, ephemeralStart()-1
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("could not find %d free udp+tcp ports on %s in %d-%d", n, host, lo, hi)
		}
		port := lo + rand.IntN(hi-lo+1)
		if used[port] {
			continue
		}
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		if portBound("udp", addr) || portBound("tcp", addr) {
			continue
		}
		used[port] = true
		out = append(out, port)
	}
	return out
}

// ephemeralStart is the first port of net.ipv4.ip_local_port_range, or
// 32768 (Linux's default) when it cannot be read or leaves too little room.
func ephemeralStart() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return fallback
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start < 12000 {
		return fallback
	}
	return start
}

// portBound reports whether somebody holds addr for network, by trying to
// bind it ourselves (deterministic, needs no protocol exchange, and works
// for UDP where a connect proves nothing).
func portBound(network, addr string) bool {
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return true
		}
		pc.Close()
	case "tcp":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return true
		}
		ln.Close()
	}
	return false
}

// listeningOn reports whether some socket in this network namespace holds
// addr: a TCP socket in LISTEN state, or any UDP socket bound to it. It
// reads /proc/net/{tcp,udp}{,6} and never binds anything itself.
//
// Readiness checks must not probe by binding: a probe that holds the port
// for a moment makes the process it waits for fail its own bind with
// "address already in use" (CI saw exactly that, in the proxy and in a
// test's blackhole, whenever the two binds met).
func listeningOn(network, addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	table := network
	if ip.Is6() {
		table += "6"
	}
	b, err := os.ReadFile("/proc/net/" + table)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		local, port, ok := parseProcAddr(f[1])
		if !ok || port != ap.Port() {
			continue
		}
		if local != ip && !local.IsUnspecified() {
			continue
		}
		if network == "tcp" && f[3] != "0A" { // TCP_LISTEN
			continue
		}
		return true
	}
	return false
}

// parseProcAddr parses a local_address column of /proc/net/{tcp,udp}{,6}:
// the address as 32-bit words in host (little-endian) byte order, hex,
// then ":" and the port in hex.
func parseProcAddr(s string) (netip.Addr, uint16, bool) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, 0, false
	}
	for i := 0; i < len(raw); i += 4 { // each word is little-endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	a, _ := netip.AddrFromSlice(raw)
	return a.Unmap(), uint16(port), true
}

// listeningOnAll reports whether addr is held for every listed network.
func listeningOnAll(addr string, networks ...string) bool {
	for _, n := range networks {
		if !listeningOn(n, addr) {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------- proxy

// proxyConfig is what the tests vary; render() turns it into the YAML the
// proxy reads (keys as specified for sipvigil serve --config).
type proxyConfig struct {
	Host        string        // "127.0.0.1" or "::1"
	Port        int           // SIP port, udp and tcp
	Workers     int           // 0 = 2
	T1          time.Duration // 0 = proxy default
	Hops        []string      // destination set "uas", ordered; none = no destinations section
	RecordRoute bool
	// Routes, when set, replaces the "routes" section (key included), e.g.
	// a route that asks a lookup instead of the destination set "uas".
	Routes string
	// Extra is raw YAML appended verbatim to the rendered config (queues,
	// suspend rules, lookups, shutdown): the sections the tests of the
	// suspend pipeline vary.
	Extra string
}

func (c proxyConfig) render() string {
	var b strings.Builder
	workers := c.Workers
	if workers == 0 {
		workers = 2
	}
	fmt.Fprintf(&b, "listen:\n  - address: %q\n    transports: [udp, tcp]\n", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
	fmt.Fprintf(&b, "workers: {count: %d}\n", workers)
	if c.T1 > 0 {
		fmt.Fprintf(&b, "timers: {t1: %s}\n", c.T1)
	}
	fmt.Fprintf(&b, "proxy: {record_route: %t}\n", c.RecordRoute)
	b.WriteString("log: {level: info}\n")
	if len(c.Hops) > 0 {
		b.WriteString("destinations:\n  uas:\n    policy: ordered\n    hops:\n")
		for _, h := range c.Hops {
			fmt.Fprintf(&b, "      - %q\n", h)
		}
	}
	if c.Routes != "" {
		b.WriteString(strings.TrimRight(c.Routes, "\n") + "\n")
	} else {
		b.WriteString("routes:\n  - name: default\n    to: uas\n")
	}
	if c.Extra != "" {
		b.WriteString(strings.TrimRight(c.Extra, "\n") + "\n")
	}
	return b.String()
}

// hop formats one destination-set entry, e.g. 127.0.0.1:15070;transport=udp
// or [::1]:15070;transport=tcp.
func hop(host string, port int, transport string) string {
	return net.JoinHostPort(host, strconv.Itoa(port)) + ";transport=" + transport
}

type proxy struct {
	Addr    string // host:port as SIPp's remote argument
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	// stopping is set by a test that stops the proxy itself (the
	// shutdown test), so cleanup does not report the exit as a crash.
	stopping bool
}

// startProxy writes cfg to a temp file, starts `sipvigil serve --config`,
// waits until it holds its UDP and TCP port, and registers cleanup that
// stops it and prints its log if the test failed.
func startProxy(t *testing.T, cfg proxyConfig) *proxy {
	t.Helper()
	needProxy(t)
	cfgText := cfg.render()
	cfgPath := filepath.Join(t.TempDir(), "sipvigil.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	return launchProxy(t, net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), cfgText, "serve", "--config", cfgPath)
}

// launchProxy runs the sipvigil binary with args and waits until addr is
// bound for UDP and TCP. cfgText is only used for the failure report.
func launchProxy(t *testing.T, addr, cfgText string, args ...string) *proxy {
	t.Helper()
	return launchProxyWith(t, procOpts{}, addr, cfgText, args...)
}

// procOpts changes how launchProxyWith starts the proxy; the zero value is
// what launchProxy does.
type procOpts struct {
	// Bin replaces proxyBin, e.g. a copy in a directory another user can
	// traverse (TestMain's build directory is 0700).
	Bin string
	// Credential runs the proxy as another user (the eBPF degraded-mode
	// test runs it as nobody, without CAP_BPF/CAP_NET_ADMIN).
	Credential *syscall.Credential
	// Env is added to the test's environment (e.g. the fault-injection
	// switch of a -tags faultinject build).
	Env []string
}

// launchProxyWith is launchProxy with procOpts.
func launchProxyWith(t *testing.T, o procOpts, addr, cfgText string, args ...string) *proxy {
	t.Helper()
	needProxy(t)
	logPath := filepath.Join(t.TempDir(), "sipvigil.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	bin := proxyBin
	if o.Bin != "" {
		bin = o.Bin
	}
	cmd := exec.Command(bin, args...)
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: o.Credential}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start sipvigil: %v", err)
	}
	p := &proxy{
		Addr:    addr,
		cmd:     cmd,
		logPath: logPath,
		exited:  make(chan struct{}),
	}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.exited) }()

	t.Cleanup(func() {
		select {
		case <-p.exited:
			if !p.stopping {
				t.Errorf("sipvigil exited during the test: %v", cmd.ProcessState)
			}
		default:
			stopProcess(cmd, p.exited, syscall.SIGTERM, 3*time.Second)
		}
		if t.Failed() {
			t.Logf("---- sipvigil %v ----\n%s", args, cfgText)
			t.Logf("---- sipvigil log (%s) ----\n%s", logPath, tail(readFile(logPath), 200))
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for !listeningOnAll(p.Addr, "udp", "tcp") {
		select {
		case <-p.exited:
			t.Fatalf("sipvigil exited before it was ready: %v\n%s", cmd.ProcessState, readFile(logPath))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sipvigil did not bind %s udp+tcp within 10s\n%s", p.Addr, readFile(logPath))
		}
	}
	return p
}

// stopProcess sends sig to the process group, then SIGKILL after grace.
//
// Children are also started with Pdeathsig so that they die with the test
// binary if it is killed (go test -timeout, ^C) before cleanup runs.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}, sig syscall.Signal, grace time.Duration) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// ---------------------------------------------------------------- SIPp

// sipp describes one SIPp process. Remote == "" means a UAS (it listens).
type sipp struct {
	Name      string // role, used for the log directory and messages
	Scenario  string // file name in testdata/
	Local     string // local IP, "127.0.0.1" or "::1"
	Port      int
	Remote    string // "host:port" of the proxy (UAC only)
	Transport string // "u1" or "t1"
	Calls     int    // -m: every run is bounded and stops by itself
	Rate      int    // -r calls per second (UAC)
	Timeout   time.Duration
	// RRWant is the Record-Route expectation passed to the UAS scenarios:
	// ";lr" through the proxy, "" for direct runs (see uas_basic.xml).
	RRWant *string
	Extra  []string
}

type sippRun struct {
	s      sipp
	cmd    *exec.Cmd
	dir    string
	stderr bytes.Buffer
	exited chan struct{}
	// stoppedByTest is set when the harness had to signal the process.
	stoppedByTest bool
}

// sippResult is what a finished SIPp run left behind.
type sippResult struct {
	Name     string
	ExitCode int // 0 all calls OK, 1 some failed, 97, 99, 255 (-1) fatal/timeout
	Stats    map[string]string
	Counts   map[string]int
	ErrLog   string
	Stderr   string
	Dir      string
	Stopped  bool // the harness had to stop it (did not finish by itself)
	Duration time.Duration
}

// Stat returns a cumulative counter from the final -trace_stat line, e.g.
// Stat("SuccessfulCall") reads "SuccessfulCall(C)".
func (r sippResult) Stat(name string) int {
	v, ok := r.Stats[name+"(C)"]
	if !ok {
		v = r.Stats[name]
	}
	n, _ := strconv.Atoi(strings.TrimSpace(v))
	return n
}

// Count sums the -trace_counts columns ending in suffix, e.g. "_CANCEL_Recv".
func (r sippResult) Count(suffix string) int {
	n := 0
	for k, v := range r.Counts {
		if strings.HasSuffix(k, suffix) {
			n += v
		}
	}
	return n
}

func (r sippResult) String() string {
	return fmt.Sprintf("%s: exit=%d created=%d successful=%d failed=%d (unexpected=%d recvTimeout=%d maxUDPRetrans=%d regexp=%d strcmp=%d tcpConnect=%d) outOfCall=%d deadCall=%d retrans=%d stopped=%v in %s",
		r.Name, r.ExitCode, r.Stat("TotalCallCreated"), r.Stat("SuccessfulCall"), r.Stat("FailedCall"),
		r.Stat("FailedUnexpectedMessage"), r.Stat("FailedTimeoutOnRecv"), r.Stat("FailedMaxUDPRetrans"),
		r.Stat("FailedRegexpDoesntMatch"), r.Stat("FailedStrcmpDoesntMatch"), r.Stat("FailedTcpConnect"),
		r.Stat("OutOfCallMsgs"), r.Stat("DeadCallMsgs"), r.Stat("Retransmissions"), r.Stopped, r.Duration.Round(time.Millisecond))
}

// details is the evidence printed when an assertion fails.
func (r sippResult) details() string {
	return fmt.Sprintf("%s\n-- stderr --\n%s\n-- error log (%s) --\n%s", r.String(), tail(r.Stderr, 40), r.Dir, tail(r.ErrLog, 60))
}

// startSIPp starts SIPp in the foreground (no -bg, -nostdin: there is no
// terminal) and waits until a UAS holds its port. The process is killed at
// test end whatever happens.
func startSIPp(t *testing.T, s sipp) *sippRun {
	t.Helper()
	needSIPp(t)
	if s.Timeout == 0 {
		s.Timeout = 30 * time.Second
	}
	if s.Transport == "" {
		s.Transport = "u1"
	}
	dir := filepath.Join(t.TempDir(), s.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-sf", filepath.Join(testdata, s.Scenario),
		"-i", s.Local, "-p", strconv.Itoa(s.Port),
		"-t", s.Transport,
		"-nostdin",
		// -timeout needs a bare number of seconds: "10s" is not honoured
		// by SIPp 3.6.1. -timeout_error turns the global timeout into a hard
		// stop with exit code 255 instead of a soft quit that waits for
		// retransmissions to expire.
		"-timeout", strconv.Itoa(int(s.Timeout.Seconds() + 0.999)), "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_stat", "-stf", filepath.Join(dir, "stat.csv"), "-fd", "1",
		"-trace_counts",
		// larger socket buffers: the load tests must not lose datagrams
		// in SIPp itself (capped by net.core.[rw]mem_max).
		"-buff_size", "4194304",
	}
	if s.Calls > 0 {
		args = append(args, "-m", strconv.Itoa(s.Calls))
	}
	if s.Rate > 0 {
		args = append(args, "-r", strconv.Itoa(s.Rate))
	}
	if s.RRWant != nil {
		args = append(args, "-set", "rr_want", *s.RRWant)
	}
	args = append(args, s.Extra...)
	if s.Remote != "" {
		args = append(args, "-s", "service", s.Remote)
	}

	// The deadline is a safety net above SIPp's own -timeout.
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout+15*time.Second)
	cmd := exec.CommandContext(ctx, sippPath, args...)
	cmd.Dir = dir // -trace_counts writes <scenario>_<pid>_counts.csv into cwd
	r := &sippRun{s: s, cmd: cmd, dir: dir, exited: make(chan struct{})}
	cmd.Stdout = nil // the screen is useless without a terminal
	cmd.Stderr = &r.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sipp %s: %v", s.Name, err)
	}
	go func() { _ = cmd.Wait(); cancel(); close(r.exited) }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			stopProcess(cmd, r.exited, syscall.SIGKILL, 2*time.Second)
		}
	})

	if s.Remote == "" { // UAS: do not start the UAC before it listens
		network := "udp"
		if s.Transport == "t1" {
			network = "tcp"
		}
		addr := net.JoinHostPort(s.Local, strconv.Itoa(s.Port))
		deadline := time.Now().Add(5 * time.Second)
		for !listeningOnAll(addr, network) {
			select {
			case <-r.exited:
				t.Fatalf("sipp %s exited at start: %v\n%s", s.Name, cmd.ProcessState, r.stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("sipp %s did not bind %s/%s within 5s", s.Name, addr, network)
			}
		}
	}
	return r
}

// wait waits up to d for SIPp to finish by itself; past that it asks it to
// stop softly (SIGUSR1: finish the calls in progress, dump stats, exit),
// then kills it.
func (r *sippRun) wait(t *testing.T, d time.Duration) sippResult {
	t.Helper()
	start := time.Now()
	select {
	case <-r.exited:
	case <-time.After(d):
		r.stoppedByTest = true
		stopProcess(r.cmd, r.exited, syscall.SIGUSR1, 5*time.Second)
	}
	return r.result(time.Since(start))
}

func (r *sippRun) result(d time.Duration) sippResult {
	res := sippResult{
		Name:     r.s.Name,
		ExitCode: -1,
		Stderr:   r.stderr.String(),
		Dir:      r.dir,
		Stopped:  r.stoppedByTest,
		Duration: d,
	}
	if ps := r.cmd.ProcessState; ps != nil {
		res.ExitCode = ps.ExitCode()
	}
	res.ErrLog = readFile(filepath.Join(r.dir, "errors.log"))
	res.Stats = lastCSVRecord(readFile(filepath.Join(r.dir, "stat.csv")))
	if m, _ := filepath.Glob(filepath.Join(r.dir, "*_counts.csv")); len(m) > 0 {
		res.Counts = map[string]int{}
		for k, v := range lastCSVRecord(readFile(m[0])) {
			if n, err := strconv.Atoi(v); err == nil {
				res.Counts[k] = n
			}
		}
	}
	return res
}

// runSIPp runs one SIPp to completion (bounded by its -m and -timeout).
func runSIPp(t *testing.T, s sipp) sippResult {
	t.Helper()
	r := startSIPp(t, s)
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return r.wait(t, timeout+10*time.Second)
}

// lastCSVRecord maps the header of a ';'-separated SIPp CSV file to the
// values of its last line (SIPp writes a final line when it exits).
func lastCSVRecord(data string) map[string]string {
	lines := strings.Split(strings.TrimSpace(data), "\n")
	if len(lines) < 2 {
		return map[string]string{}
	}
	hdr := strings.Split(strings.TrimSpace(lines[0]), ";")
	val := strings.Split(strings.TrimSpace(lines[len(lines)-1]), ";")
	m := make(map[string]string, len(hdr))
	for i, h := range hdr {
		if h != "" && i < len(val) {
			m[h] = val[i]
		}
	}
	return m
}

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// tail keeps the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("... (%d lines cut)\n%s", len(lines)-n, strings.Join(lines[len(lines)-n:], "\n"))
}

// ---------------------------------------------------------------- assertions

// expectAllOK asserts that a SIPp run finished by itself with exit code 0
// and exactly calls successful calls.
func expectAllOK(t *testing.T, r sippResult, calls int) {
	t.Helper()
	t.Log(r.String())
	if r.Stopped || r.ExitCode != 0 || r.Stat("SuccessfulCall") != calls || r.Stat("FailedCall") != 0 {
		t.Errorf("%s: want exit 0 with %d successful and 0 failed calls\n%s", r.Name, calls, r.details())
	}
}

// expectFailed asserts that a negative-control run failed every call.
func expectFailed(t *testing.T, r sippResult, calls int) {
	t.Helper()
	t.Log(r.String())
	if r.ExitCode != 1 || r.Stat("FailedCall") != calls {
		t.Errorf("%s: negative control: want exit 1 with %d failed calls\n%s", r.Name, calls, r.details())
	}
}

func strp(s string) *string { return &s }

var (
	viaProxy = strp(";lr") // UAS must see the proxy's Record-Route
	direct   = strp("")    // UAS must see no Record-Route
)

// transportOf maps a SIPp -t mode to the proxy hop transport.
func transportOf(sippT string) string {
	if sippT == "t1" {
		return "tcp"
	}
	return "udp"
}

// TestListeningOn checks the readiness probe against sockets whose state is
// known, on both address families: it must see a TCP listener and a bound
// UDP socket, and stop seeing them once they are closed.
func TestListeningOn(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Logf("skip %s: %v", host, err)
			continue
		}
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			ln.Close()
			t.Fatal(err)
		}
		tcpAddr, udpAddr := ln.Addr().String(), pc.LocalAddr().String()
		if !listeningOn("tcp", tcpAddr) || !listeningOn("udp", udpAddr) {
			t.Errorf("%s: tcp %s listening=%v, udp %s bound=%v; want both true",
				host, tcpAddr, listeningOn("tcp", tcpAddr), udpAddr, listeningOn("udp", udpAddr))
		}
		ln.Close()
		pc.Close()
		if listeningOn("tcp", tcpAddr) || listeningOn("udp", udpAddr) {
			t.Errorf("%s: still reported after close", host)
		}
	}
}
