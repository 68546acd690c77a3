package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of the eBPF kernel timestamps (bpf/, telemetry/kernel/,
// cmd/sipvigil/kernel.go): SIPp calls through a proxy whose TC programs
// watch lo, checked from the proxy's --kernel-dump JSON lines and its
// "ebpf stats" shutdown log line. They need root and a kernel with TC BPF
// (requireBPF); everything runs on loopback with small, bounded loads.

// ---------------------------------------------------------------- availability

var (
	bpfOnce   sync.Once
	bpfReason string // why eBPF tests cannot run; "" = they can
)

// requireBPF skips the test (fails it with CI=true) unless the proxy can
// load its TC programs here. The probe is the real thing: the proxy with
// ebpf.mode on refuses to start without them, so "it served" is exactly
// the capability the tests need (root alone is not enough: lockdown, a
// kernel without BPF or a seccomp'd container also stop it).
func requireBPF(t *testing.T) {
	t.Helper()
	needProxy(t)
	bpfOnce.Do(func() { bpfReason = probeBPF(t) })
	if bpfReason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("eBPF unavailable and CI=true: %s", bpfReason)
	}
	t.Skip("eBPF unavailable: " + bpfReason + " (set CI=true to make this a failure)")
}

// probeBPF starts the proxy with ebpf.mode on and reports why it did not
// serve, or "" when it did. It stops the probe with SIGTERM, not SIGKILL,
// so that a legacy-TC fallback removes its filters.
func probeBPF(t *testing.T) string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("not root (euid %d): loading TC programs needs CAP_BPF and CAP_NET_ADMIN", os.Geteuid())
	}
	ports := freePorts(t, "127.0.0.1", 2)
	dir, err := os.MkdirTemp("", "sipvigil-bpfprobe-")
	if err != nil {
		return "probe: " + err.Error()
	}
	defer os.RemoveAll(dir)
	cfg := proxyConfig{
		Host: "127.0.0.1", Port: ports[0],
		Hops:  []string{hop("127.0.0.1", ports[1], "udp")},
		Extra: "ebpf: {mode: on}",
	}
	cfgPath := filepath.Join(dir, "probe.yaml")
	logPath := filepath.Join(dir, "probe.log")
	if err := os.WriteFile(cfgPath, []byte(cfg.render()), 0o644); err != nil {
		return "probe: " + err.Error()
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return "probe: " + err.Error()
	}
	defer logf.Close()
	cmd := exec.Command(proxyBin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "probe: start sipvigil: " + err.Error()
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer stopProcess(cmd, exited, syscall.SIGTERM, 10*time.Second)
	deadline := time.After(10 * time.Second)
	for {
		if strings.Contains(readFile(logPath), `msg="sipvigil serving"`) {
			return ""
		}
		select {
		case <-exited:
			return fmt.Sprintf("sipvigil with ebpf.mode on exited (%v):\n%s", cmd.ProcessState, tail(readFile(logPath), 10))
		case <-deadline:
			return "sipvigil with ebpf.mode on did not serve within 10s:\n" + tail(readFile(logPath), 10)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------- proxy control

// startEBPFProxy writes cfg into dir (t.TempDir() when "") and starts
// `sipvigil serve`, with --kernel-dump into dir when dump is set. It
// returns the proxy and the dump path.
func startEBPFProxy(t *testing.T, cfg proxyConfig, o procOpts, dir string, dump bool) (*proxy, string) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	text := cfg.render()
	cfgPath := filepath.Join(dir, "sipvigil.yaml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", cfgPath}
	dumpPath := ""
	if dump {
		dumpPath = filepath.Join(dir, "kernel-dump.jsonl")
		args = append(args, "--kernel-dump", dumpPath)
	}
	p := launchProxyWith(t, o, net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), text, args...)
	return p, dumpPath
}

// signalProxy sends sig to the proxy (only its pid: it has no children),
// waits for it to exit and returns its exit code (-1 when killed by a
// signal). The proxy logs its eBPF stats only on the way out, so every
// stats assertion comes after this. A graceful stop takes ~2 s: the drain
// lingers for in-dialog requests.
func signalProxy(t *testing.T, p *proxy, sig syscall.Signal) int {
	t.Helper()
	p.stopping = true
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to sipvigil: %v", sig, err)
	}
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("sipvigil still running 20s after %v\n%s", sig, tail(readFile(p.logPath), 30))
	}
	return p.cmd.ProcessState.ExitCode()
}

// stopGracefully is signalProxy(SIGTERM) that insists on exit code 0.
func stopGracefully(t *testing.T, p *proxy) {
	t.Helper()
	if code := signalProxy(t, p, syscall.SIGTERM); code != 0 {
		t.Fatalf("sipvigil exit code %d after SIGTERM, want 0\n%s", code, tail(readFile(p.logPath), 40))
	}
}

// ---------------------------------------------------------------- stats and dump

var statsField = regexp.MustCompile(`(\w+)=(\d+)`)

// ebpfStats parses the last `msg="ebpf stats"` line of the proxy log; ok
// is false when there is none (eBPF disabled, or the proxy died).
func ebpfStats(log string) (st map[string]int64, line string, ok bool) {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="ebpf stats"`) {
			line, ok = l, true
		}
	}
	if !ok {
		return nil, "", false
	}
	st = map[string]int64{}
	for _, m := range statsField.FindAllStringSubmatch(line[strings.Index(line, `msg="ebpf stats"`):], -1) {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		st[m[1]] = n
	}
	return st, line, true
}

// requireStats returns the parsed stats or fails the test.
func requireStats(t *testing.T, p *proxy) map[string]int64 {
	t.Helper()
	st, line, ok := ebpfStats(readFile(p.logPath))
	if !ok {
		t.Fatalf("no \"ebpf stats\" line in the proxy log\n%s", tail(readFile(p.logPath), 40))
	}
	t.Logf("ebpf stats: %s", line[strings.Index(line, `msg="ebpf stats"`):])
	for _, k := range []string{"kernel_events", "packets", "matched", "unmatched_kernel", "unmatched_packet",
		"evicted", "other_side", "short_capture", "tcp_unaligned", "tcp_incomplete", "clock_steps"} {
		if _, ok := st[k]; !ok {
			t.Fatalf("ebpf stats line lacks %s: %s", k, line)
		}
	}
	// The BPF program counters are part of the documented line, and
	// ring_drops is the only evidence that no event was lost before the
	// matcher. The proxy omits all three, silently, when reading them
	// fails; that is a failure, but the matcher checks can still run.
	var missing []string
	for _, k := range []string{"bpf_seen", "bpf_captured", "ring_drops"} {
		if _, ok := st[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("ebpf stats line lacks the BPF counters %v, so ring drops cannot be ruled out "+
			"(the proxy drops them when Capture.Counters fails, e.g. after the capture was closed)", missing)
	}
	return st
}

// expectJoinComplete asserts the invariants of a run in which every SIP
// message touched only the proxy's listen port on lo and nothing was lost:
// the matcher joined every message the proxy read or wrote to exactly one
// kernel event of its own side, and every kernel event of its side to one
// message.
//
// Stats on lo: each packet passes both hooks (the sender's egress, the
// receiver's ingress), and the proxy's programs capture only the proxy's
// side of the two (bpf.Config.ProxySideOnly; the bpf package's own tests
// prove both hooks see every packet). So UDP: kernel_events == packets and
// other_side == 0 — each message seen exactly once at the hook and
// direction on the proxy's side. TCP: events are segments, not messages;
// other_side == 0 still holds, kernel_events == packets only when every
// message went in its own segment (usual on lo, not guaranteed), so that
// is logged, not asserted.
func expectJoinComplete(t *testing.T, st map[string]int64, tcp, withDump bool) {
	t.Helper()
	eq := func(name string, got, want int64) {
		t.Helper()
		if got != want {
			t.Errorf("ebpf stats: %s = %d, want %d", name, got, want)
		}
	}
	if st["packets"] == 0 {
		t.Errorf("ebpf stats: packets = 0: the proxy reported no messages to the matcher")
	}
	eq("matched", st["matched"], st["packets"])
	for _, k := range []string{"unmatched_kernel", "unmatched_packet", "evicted", "short_capture", "tcp_unaligned", "tcp_incomplete"} {
		eq(k, st[k], 0)
	}
	// Every event the programs submitted reached the matcher (checked
	// only when the counters were logged; requireStats reports their
	// absence).
	if v, ok := st["ring_drops"]; ok {
		eq("ring_drops", v, 0)
	}
	if v, ok := st["bpf_captured"]; ok {
		eq("bpf_captured", v, st["kernel_events"])
	}
	if withDump {
		if v, ok := st["dump_dropped"]; !ok {
			t.Errorf("ebpf stats line lacks dump_dropped although --kernel-dump was given")
		} else {
			eq("dump_dropped", v, 0)
		}
	}
	eq("other_side", st["other_side"], 0)
	if !tcp {
		eq("kernel_events", st["kernel_events"], st["packets"])
		return
	}
	t.Logf("tcp: kernel_events=%d, packets=%d (equal when every message had its own segment)", st["kernel_events"], st["packets"])
}

// dumpRec is one --kernel-dump line.
type dumpRec struct {
	Dir        string    `json:"dir"`
	Proto      string    `json:"proto"`
	Local      string    `json:"local"`
	Remote     string    `json:"remote"`
	CallID     string    `json:"call_id"`
	CSeq       string    `json:"cseq"`
	Summary    string    `json:"summary"`
	UserMono   int64     `json:"user_mono"`
	KernelMono int64     `json:"kernel_mono"`
	Wall       time.Time `json:"wall"`
	Ifindex    uint32    `json:"ifindex"`
	Segments   int       `json:"segments"`
}

func (r dumpRec) String() string {
	return fmt.Sprintf("%s %s %s→%s %q [%s] %q user=%d kernel=%d (kernel-user %+dns) seg=%d",
		r.Dir, r.Proto, r.Local, r.Remote, r.CallID, r.CSeq, r.Summary, r.UserMono, r.KernelMono, r.KernelMono-r.UserMono, r.Segments)
}

func readDump(t *testing.T, path string) []dumpRec {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("kernel dump: %v", err)
	}
	defer f.Close()
	var out []dumpRec
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var r dumpRec
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("kernel dump line %d: %v: %s", n, err, sc.Text())
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		t.Fatalf("kernel dump: %v", err)
	}
	return out
}

// errList collects assertion failures and reports the first few with a
// total, so a systematic problem over 100,000 records stays readable.
type errList struct {
	what string
	n    int
	msgs []string
}

func (e *errList) add(format string, args ...any) {
	e.n++
	if len(e.msgs) < 8 {
		e.msgs = append(e.msgs, fmt.Sprintf(format, args...))
	}
}

func (e *errList) report(t *testing.T) {
	t.Helper()
	if e.n > 0 {
		t.Errorf("%s: %d violation(s), first %d:\n  %s", e.what, e.n, len(e.msgs), strings.Join(e.msgs, "\n  "))
	}
}

// msgKey identifies "the same message" on both sides of the proxy: the
// proxy rewrites Via, Route, Record-Route and Max-Forwards, but keeps
// Call-ID, CSeq and the method or status code.
type msgKey struct{ callID, cseq, kind string }

func keyOf(r dumpRec) msgKey {
	f := strings.Fields(r.Summary)
	kind := ""
	switch {
	case len(f) >= 2 && f[0] == "SIP/2.0":
		kind = "status " + f[1]
	case len(f) >= 1:
		kind = "request " + f[0]
	}
	return msgKey{r.CallID, r.CSeq, kind}
}

// dumpExpect says what a dump must contain.
type dumpExpect struct {
	proto   string // "udp" or "tcp" for every record, "" = either
	uas     string // the UAS address (host:port) as the proxy sees it
	calls   int    // distinct Call-IDs
	perCall [2]int // In and Out records per call; zero = not checked
}

// checkDump verifies the kernel dump of a run:
//   - one record per matched message (len == stats matched), on lo;
//   - no message twice (same direction, peer, Call-ID, CSeq, start line):
//     exactly one kernel event per hook and direction;
//   - kernel/user order per record: In.kernel_mono < In.user_mono (the
//     packet passed TC ingress before the read returned), Out.user_mono <
//     Out.kernel_mono (the write started before the packet passed TC
//     egress);
//   - every In is paired with the Out the proxy forwarded (same key, to
//     the other peer), and kernel ingress < user receive < user send <
//     kernel egress along the pair; Outs without an In must be locally
//     generated (100 Trying).
func checkDump(t *testing.T, recs []dumpRec, st map[string]int64, want dumpExpect) {
	t.Helper()
	if int64(len(recs)) != st["matched"] {
		t.Errorf("kernel dump has %d records, ebpf stats matched = %d", len(recs), st["matched"])
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}

	fields := errList{what: "record fields"}
	dup := errList{what: "same message dumped twice (seen more than once per hook and direction)"}
	order := errList{what: "kernel/user order within one record"}
	seen := map[string]int{}
	ins := map[msgKey][]dumpRec{}
	outs := map[msgKey][]dumpRec{}
	callIO := map[string]*[2]int{}
	var inLat, outLat []int64
	for _, r := range recs {
		if r.Ifindex != uint32(lo.Index) || (want.proto != "" && r.Proto != want.proto) || r.Segments < 1 ||
			(r.Proto == "udp" && r.Segments != 1) || r.UserMono <= 0 || r.KernelMono <= 0 || r.CallID == "" {
			fields.add("%v (want ifindex %d, proto %q, segments >= 1 and == 1 for udp)", r, lo.Index, want.proto)
		}
		id := strings.Join([]string{r.Dir, r.Proto, r.Remote, r.CallID, r.CSeq, r.Summary}, "|")
		if seen[id]++; seen[id] == 2 {
			dup.add("%v", r)
		}
		if callIO[r.CallID] == nil {
			callIO[r.CallID] = &[2]int{}
		}
		k := keyOf(r)
		switch r.Dir {
		case "in":
			callIO[r.CallID][0]++
			ins[k] = append(ins[k], r)
			if !(r.KernelMono < r.UserMono) {
				order.add("In: kernel ingress not before user receive: %v", r)
			}
			inLat = append(inLat, r.UserMono-r.KernelMono)
		case "out":
			callIO[r.CallID][1]++
			outs[k] = append(outs[k], r)
			if !(r.UserMono < r.KernelMono) {
				order.add("Out: user send not before kernel egress: %v", r)
			}
			outLat = append(outLat, r.KernelMono-r.UserMono)
		default:
			fields.add("bad dir: %v", r)
		}
	}
	fields.report(t)
	dup.report(t)
	order.report(t)

	// Say plainly when a whole leg is missing: the pair checks below would
	// only list its symptoms message by message.
	legs := map[bool]int{}
	for _, r := range recs {
		legs[r.Remote == want.uas]++
	}
	if len(recs) > 0 && legs[true] == 0 {
		t.Errorf("kernel dump: no message to or from the UAS %s was joined (%d with the UAC): the proxy's leg to the next hop got no kernel timestamps", want.uas, legs[false])
	}
	if len(recs) > 0 && legs[false] == 0 {
		t.Errorf("kernel dump: no message to or from the UAC was joined (%d with the UAS %s)", legs[true], want.uas)
	}

	if want.calls > 0 && len(callIO) != want.calls {
		t.Errorf("kernel dump covers %d Call-IDs, want %d", len(callIO), want.calls)
	}
	if want.perCall != [2]int{} {
		counts := errList{what: fmt.Sprintf("records per call (want %d in, %d out)", want.perCall[0], want.perCall[1])}
		for id, n := range callIO {
			if *n != want.perCall {
				counts.add("%q: %d in, %d out", id, n[0], n[1])
			}
		}
		counts.report(t)
	}

	// Pair In and forwarded Out. Within one key, both lists are in user
	// time order; the i-th In towards the other peer pairs with the i-th Out
	// (a retransmission is forwarded again and pairs with the next copy).
	pair := errList{what: "In without its forwarded Out"}
	chain := errList{what: "kernel ingress < user receive < user send < kernel egress along a forwarded message"}
	local := errList{what: "Out without an In that is not locally generated"}
	used := map[msgKey]map[int]bool{}
	pairs := 0
	var hold []int64
	for k, list := range ins {
		sort.Slice(list, func(i, j int) bool { return list[i].UserMono < list[j].UserMono })
		outList := outs[k]
		sort.Slice(outList, func(i, j int) bool { return outList[i].UserMono < outList[j].UserMono })
		used[k] = map[int]bool{}
		for _, in := range list {
			fromUAS := in.Remote == want.uas
			found := -1
			for j, o := range outList {
				if used[k][j] || (fromUAS && o.Remote == want.uas) || (!fromUAS && o.Remote != want.uas) {
					continue
				}
				found = j
				break
			}
			if found < 0 {
				pair.add("%v", in)
				continue
			}
			used[k][found] = true
			out := outList[found]
			pairs++
			hold = append(hold, out.UserMono-in.UserMono)
			if !(in.KernelMono < in.UserMono && in.UserMono < out.UserMono && out.UserMono < out.KernelMono) {
				chain.add("\n    %v\n    %v", in, out)
			}
		}
	}
	for k, list := range outs {
		for j, o := range list {
			if used[k][j] {
				continue
			}
			if k.kind != "status 100" {
				local.add("%v", o)
			}
		}
	}
	pair.report(t)
	chain.report(t)
	local.report(t)
	t.Logf("dump: %d records, %d calls, %d forwarded pairs; ingress→read %s, proxy hold %s, write→egress %s",
		len(recs), len(callIO), pairs, pctl(inLat), pctl(hold), pctl(outLat))
}

// pctl formats the median and maximum of ns durations.
func pctl(ns []int64) string {
	if len(ns) == 0 {
		return "n/a"
	}
	s := append([]int64(nil), ns...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("p50 %v max %v", time.Duration(s[len(s)/2]), time.Duration(s[len(s)-1]))
}

// ---------------------------------------------------------------- runs

// ebpfCall is one SIPp run through an eBPF-enabled proxy.
type ebpfCall struct {
	uacT, uasT  string // SIPp -t for each side: "u1" or "t1"
	calls, rate int
	extra       string // ebpf section (raw YAML)
	timeout     time.Duration
}

type ebpfResult struct {
	proxy          *proxy
	dump           string
	uasAddr        string // UAS host:port
	uacRes, uasRes sippResult
}

// runEBPFCalls starts a proxy with --kernel-dump and the given ebpf
// section, runs uac_basic/uas_basic through it, and stops it with SIGTERM
// (the stats line is written at shutdown).
func runEBPFCalls(t *testing.T, c ebpfCall) ebpfResult {
	t.Helper()
	if c.timeout == 0 {
		c.timeout = 20 * time.Second
	}
	ports := freePorts(t, "127.0.0.1", 3) // proxy, UAS, UAC
	p, dump := startEBPFProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops:  []string{hop("127.0.0.1", ports[1], transportOf(c.uasT))},
		Extra: c.extra,
	}, procOpts{}, "", true)
	uasRun := startSIPp(t, sipp{
		Name: "uas", Scenario: "uas_basic.xml", Local: "127.0.0.1", Port: ports[1], Transport: c.uasT,
		Calls: c.calls, Timeout: c.timeout + 10*time.Second, RRWant: viaProxy,
	})
	uac := runSIPp(t, sipp{
		Name: "uac", Scenario: "uac_basic.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr, Transport: c.uacT,
		Calls: c.calls, Rate: c.rate, Timeout: c.timeout,
	})
	uas := uasRun.wait(t, 5*time.Second)
	expectAllOK(t, uac, c.calls)
	expectAllOK(t, uas, c.calls)
	stopGracefully(t, p)
	return ebpfResult{proxy: p, dump: dump, uasAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])), uacRes: uac, uasRes: uas}
}

// perCallIfClean is the exact In/Out count of one uac_basic call (In:
// INVITE 180 200 ACK BYE 200; Out: the same forwarded plus the proxy's 100
// Trying), or zero when SIPp retransmitted something (then a call has more
// records, legitimately).
func perCallIfClean(r ebpfResult) [2]int {
	if r.uacRes.Stat("Retransmissions") != 0 || r.uasRes.Stat("Retransmissions") != 0 {
		return [2]int{}
	}
	return [2]int{6, 7}
}

// ---------------------------------------------------------------- tests

// TestEBPFCallTimestamps: a few calls through the proxy with ebpf.mode on.
// Every message the proxy read or wrote must be joined to exactly one
// kernel event of its own side of lo, and for every forwarded message the
// kernel and user timestamps must be in causal order: TC ingress, read
// returns, write starts, TC egress.
//
//   - udp: UAC and UAS over UDP.
//   - tcp-to-udp: UAC over TCP (to the proxy's listen port), UAS over UDP:
//     every message crosses the listen port, so TCP framing is checked
//     with complete forwarded pairs.
//   - tcp: both legs TCP. The proxy reaches the UAS on an outbound
//     connection from an ephemeral port to the UAS's port, neither of them
//     a listen port: the programs capture configured next-hop ports too
//     (bpf.Config.PeerPorts) and the matcher learns the proxy's ephemeral
//     endpoint, so those messages must be joined as well.
func TestEBPFCallTimestamps(t *testing.T) {
	requireBPF(t)
	const calls = 5
	for _, c := range []struct {
		name       string
		uacT, uasT string
	}{
		{"udp", "u1", "u1"},
		{"tcp-to-udp", "t1", "u1"},
		{"tcp", "t1", "t1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			r := runEBPFCalls(t, ebpfCall{uacT: c.uacT, uasT: c.uasT, calls: calls, rate: 10, extra: "ebpf: {mode: on}"})
			st := requireStats(t, r.proxy)
			tcp := c.uacT == "t1" || c.uasT == "t1"
			expectJoinComplete(t, st, tcp, true)
			if per := perCallIfClean(r); per != [2]int{} && st["packets"] != int64(calls*(per[0]+per[1])) {
				t.Errorf("ebpf stats: packets = %d, want %d (%d calls × %d messages)", st["packets"], calls*(per[0]+per[1]), calls, per[0]+per[1])
			}
			proto := "udp"
			if c.uacT == "t1" && c.uasT == "t1" {
				proto = "tcp"
			} else if tcp {
				proto = "" // mixed
			}
			checkDump(t, readDump(t, r.dump), st, dumpExpect{proto: proto, uas: r.uasAddr, calls: calls, perCall: perCallIfClean(r)})
			t.Logf("%s: %s", c.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestEBPFMatcher10kCalls: 10,000 calls at 1,000 calls/s over UDP (about
// 10 s; 130,000 messages, 260,000 kernel events). The matcher must join
// 100%: nothing unmatched, evicted or dropped in the ring or the dump.
func TestEBPFMatcher10kCalls(t *testing.T) {
	requireBPF(t)
	if testing.Short() {
		t.Skip("-short")
	}
	const calls, rate = 10000, 1000
	start := time.Now()
	r := runEBPFCalls(t, ebpfCall{uacT: "u1", uasT: "u1", calls: calls, rate: rate, extra: "ebpf: {mode: on}", timeout: 30 * time.Second})
	t.Logf("%d calls at %d cps, proxy stopped, after %s", calls, rate, time.Since(start).Round(time.Millisecond))
	st := requireStats(t, r.proxy)
	expectJoinComplete(t, st, false, true)
	checkDump(t, readDump(t, r.dump), st, dumpExpect{proto: "udp", uas: r.uasAddr, calls: calls, perCall: perCallIfClean(r)})
}

// ---------------------------------------------------------------- legacy tc

// tcFilter is one sipvigil legacy filter as `tc filter show` prints it.
type tcFilter struct {
	hook  string // "ingress" or "egress" (the clsact parent listed)
	pref  int
	pid   int
	pidNS uint64
	dir   string // the direction in the name
	name  string
}

var tcFilterLine = regexp.MustCompile(`pref (\d+) bpf .*?(sipvigil:pid=(\d+):pidns=(\d+):(\w+))`)

// loFilters lists the sipvigil-named filters on lo's clsact hooks. Without
// a clsact qdisc tc prints nothing (or an error we treat as nothing).
func loFilters(t *testing.T) []tcFilter {
	t.Helper()
	if !hasClsact(t) {
		return nil
	}
	var out []tcFilter
	for _, hook := range []string{"ingress", "egress"} {
		b, err := exec.Command("tc", "filter", "show", "dev", "lo", hook).CombinedOutput()
		if err != nil {
			t.Fatalf("tc filter show dev lo %s: %v\n%s", hook, err, b)
		}
		for _, m := range tcFilterLine.FindAllStringSubmatch(string(b), -1) {
			pref, _ := strconv.Atoi(m[1])
			pid, _ := strconv.Atoi(m[3])
			ns, _ := strconv.ParseUint(m[4], 10, 64)
			out = append(out, tcFilter{hook: hook, pref: pref, pid: pid, pidNS: ns, dir: m[5], name: m[2]})
		}
	}
	return out
}

// anyLoFilters reports whether lo's clsact hooks hold any filter at all
// (ours or anybody's), which decides whether the qdisc may be deleted.
func anyLoFilters(t *testing.T) bool {
	t.Helper()
	for _, hook := range []string{"ingress", "egress"} {
		b, _ := exec.Command("tc", "filter", "show", "dev", "lo", hook).CombinedOutput()
		if strings.Contains(string(b), "filter") {
			return true
		}
	}
	return false
}

func hasClsact(t *testing.T) bool {
	t.Helper()
	b, err := exec.Command("tc", "qdisc", "show", "dev", "lo").CombinedOutput()
	if err != nil {
		t.Fatalf("tc qdisc show dev lo: %v\n%s", err, b)
	}
	return strings.Contains(string(b), "qdisc clsact")
}

func filtersOf(fs []tcFilter, pid int) []tcFilter {
	var out []tcFilter
	for _, f := range fs {
		if f.pid == pid {
			out = append(out, f)
		}
	}
	return out
}

// expectOwnFilters asserts that pid has exactly its two filters on lo:
// ingress and egress, priority 1, named after this pid namespace.
func expectOwnFilters(t *testing.T, pid int, myNS uint64, when string) {
	t.Helper()
	fs := filtersOf(loFilters(t), pid)
	got := map[string]bool{}
	for _, f := range fs {
		if f.pref != 1 || f.dir != f.hook || f.pidNS != myNS {
			t.Errorf("%s: filter %+v: want pref 1, name direction == hook, pidns %d", when, f, myNS)
		}
		got[f.hook] = true
	}
	if len(fs) != 2 || !got["ingress"] || !got["egress"] {
		t.Errorf("%s: pid %d has filters %+v, want one on ingress and one on egress", when, pid, fs)
	}
}

// expectNoFiltersOf asserts that none of pids has a filter left on lo, and
// that no other sipvigil filter is left unless its process is alive (a
// concurrent run's filters are not ours to judge; a dead owner's are
// stale, which the start-up cleanup should have removed).
func expectNoFiltersOf(t *testing.T, when string, pids ...int) {
	t.Helper()
	mine := map[int]bool{}
	for _, p := range pids {
		mine[p] = true
	}
	for _, f := range loFilters(t) {
		switch {
		case mine[f.pid]:
			t.Errorf("%s: filter %s (%s) of our proxy pid %d remains on lo", when, f.name, f.hook, f.pid)
		case syscall.Kill(f.pid, 0) == nil:
			t.Logf("%s: ignoring filter %s (%s) of a live process not started by this test", when, f.name, f.hook)
		default:
			t.Errorf("%s: stale filter %s (%s) of dead pid %d remains on lo", when, f.name, f.hook, f.pid)
		}
	}
}

func pidNamespace(t *testing.T) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/pid", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestEBPFLegacyTCFilters: the clsact + cls_bpf path forced by config.
// Legacy filters, unlike TCX links, are not tied to a file descriptor and
// outlive the process, so the proxy must delete its own at shutdown and
// stale ones (owner dead) at the next start:
//
//  1. P1 (legacy) carries calls with full kernel joins; after SIGTERM none
//     of its filters remain.
//  2. P2 (legacy) is SIGKILLed: its filters remain (the kernel cannot know
//     they are orphans; this step proves the next one tests something).
//  3. P3 (legacy) starts: P2's filters are gone, only P3's exist; after
//     SIGTERM none remain.
//
// The clsact qdisc is shared with other tc users and the proxy leaves it;
// the test removes it at the end if it was not there before and is empty.
func TestEBPFLegacyTCFilters(t *testing.T) {
	requireBPF(t)
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("tc (iproute2) not installed")
	}
	hadClsact := hasClsact(t)
	t.Cleanup(func() {
		// Registered first, so it runs after every proxy is stopped.
		if hadClsact || !hasClsact(t) {
			return
		}
		if anyLoFilters(t) {
			t.Logf("clsact qdisc on lo still holds filters (another tc user?); left in place")
			return
		}
		if b, err := exec.Command("tc", "qdisc", "del", "dev", "lo", "clsact").CombinedOutput(); err != nil {
			t.Errorf("tc qdisc del dev lo clsact: %v\n%s", err, b)
		}
	})
	myNS := pidNamespace(t)
	const legacy = "ebpf: {mode: on, legacy_tc: true}"

	// 1. calls through a legacy-mode proxy, graceful stop.
	r := runEBPFCalls(t, ebpfCall{uacT: "u1", uasT: "u1", calls: 5, rate: 10, extra: legacy})
	p1 := r.proxy.cmd.Process.Pid
	log1 := readFile(r.proxy.logPath)
	if !strings.Contains(log1, "mode=legacy") {
		t.Errorf("P1 log does not say mode=legacy:\n%s", tail(log1, 20))
	}
	st := requireStats(t, r.proxy)
	if st["kernel_events"] == 0 {
		t.Errorf("legacy mode: kernel_events = 0")
	}
	expectJoinComplete(t, st, false, true)
	expectNoFiltersOf(t, "after SIGTERM of P1", p1)

	// 2. SIGKILL leaves the filters behind.
	ports := freePorts(t, "127.0.0.1", 3)
	cfg := proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops:  []string{hop("127.0.0.1", ports[1], "udp")},
		Extra: legacy,
	}
	p, _ := startEBPFProxy(t, cfg, procOpts{}, "", false)
	p2 := p.cmd.Process.Pid
	expectOwnFilters(t, p2, myNS, "P2 running")
	signalProxy(t, p, syscall.SIGKILL) // reaped by the harness: kill(pid, 0) now fails
	if fs := filtersOf(loFilters(t), p2); len(fs) != 2 {
		t.Errorf("after SIGKILL of P2: %d filters of pid %d on lo, want its 2 (legacy filters outlive the process): %+v", len(fs), p2, fs)
	}

	// 3. the next start removes P2's stale filters and installs its own.
	p, _ = startEBPFProxy(t, cfg, procOpts{}, "", false)
	p3 := p.cmd.Process.Pid
	expectOwnFilters(t, p3, myNS, "P3 running")
	if fs := filtersOf(loFilters(t), p2); len(fs) != 0 {
		t.Errorf("P3 running: stale filters of dead P2 (pid %d) remain: %+v", p2, fs)
	}
	for _, f := range loFilters(t) {
		if f.pid != p3 && syscall.Kill(f.pid, 0) != nil {
			t.Errorf("P3 running: filter %s of dead pid %d remains", f.name, f.pid)
		}
	}
	if n := strings.Count(readFile(p.logPath), "deleted stale sipvigil tc filter"); n != 2 {
		t.Errorf("P3 log: %d \"deleted stale sipvigil tc filter\" warnings, want 2 (P2's ingress and egress)\n%s", n, tail(readFile(p.logPath), 20))
	}
	// P3 still works after the cleanup.
	uas := startSIPp(t, sipp{Name: "uas3", Scenario: "uas_basic.xml", Local: "127.0.0.1", Port: ports[1], Calls: 2, Timeout: 20 * time.Second, RRWant: viaProxy})
	uac := runSIPp(t, sipp{Name: "uac3", Scenario: "uac_basic.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr, Calls: 2, Rate: 10, Timeout: 10 * time.Second})
	expectAllOK(t, uac, 2)
	expectAllOK(t, uas.wait(t, 5*time.Second), 2)
	stopGracefully(t, p)
	st3 := requireStats(t, p)
	expectJoinComplete(t, st3, false, false)
	expectNoFiltersOf(t, "after SIGTERM of P3", p1, p2, p3)
}

// ---------------------------------------------------------------- degraded

// TestEBPFDegradedUnprivileged: the proxy as user nobody (no CAP_BPF,
// CAP_NET_ADMIN) with the default ebpf.mode auto must log exactly one
// "eBPF kernel timestamps disabled" warning and otherwise run normally:
// calls complete and SIGTERM exits 0.
func TestEBPFDegradedUnprivileged(t *testing.T) {
	requireBPF(t) // as root: the point is that only the missing privilege differs
	const nobody = 65534
	// TestMain's build directory and t.TempDir() are 0700 root: give
	// nobody a traversable directory with a copy of the binary and the
	// config. The log is opened by the test and inherited as an fd.
	dir, err := os.MkdirTemp("", "sipvigil-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sipvigil")
	data, err := os.ReadFile(proxyBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	ports := freePorts(t, "127.0.0.1", 3)
	p, _ := startEBPFProxy(t, proxyConfig{
		Host: "127.0.0.1", Port: ports[0], RecordRoute: true,
		Hops: []string{hop("127.0.0.1", ports[1], "udp")},
		// no ebpf section: the default is mode auto
	}, procOpts{Bin: bin, Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}, dir, false)

	// Make sure the privilege drop really happened.
	status := readFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if !regexp.MustCompile(`(?m)^Uid:\s+65534\s+65534\s+65534\s+65534$`).MatchString(status) {
		t.Fatalf("proxy does not run as nobody:\n%s", status)
	}

	const calls = 5
	uas := startSIPp(t, sipp{Name: "uas", Scenario: "uas_basic.xml", Local: "127.0.0.1", Port: ports[1], Calls: calls, Timeout: 20 * time.Second, RRWant: viaProxy})
	uac := runSIPp(t, sipp{Name: "uac", Scenario: "uac_basic.xml", Local: "127.0.0.1", Port: ports[2], Remote: p.Addr, Calls: calls, Rate: 10, Timeout: 10 * time.Second})
	expectAllOK(t, uac, calls)
	expectAllOK(t, uas.wait(t, 5*time.Second), calls)
	stopGracefully(t, p)

	log := readFile(p.logPath)
	if n := strings.Count(log, "eBPF kernel timestamps disabled"); n != 1 {
		t.Errorf("%d \"eBPF kernel timestamps disabled\" warnings, want exactly 1\n%s", n, tail(log, 30))
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "eBPF kernel timestamps disabled") {
			if !strings.Contains(l, "level=WARN") {
				t.Errorf("the degraded-mode message is not a warning: %s", l)
			}
			t.Logf("warning: %s", l)
		}
	}
	for _, bad := range []string{"eBPF kernel timestamps enabled", `msg="ebpf stats"`, "level=ERROR"} {
		if strings.Contains(log, bad) {
			t.Errorf("degraded proxy log contains %q\n%s", bad, tail(log, 30))
		}
	}
}
