package audit

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestLadder(t *testing.T) {
	tr := traceHex(4)
	spans := reinviteOvertakesACK(tr, instA)
	spans = append(spans, ackTxn(tr, spanHex(8), instB, 1, 6000, 6020))
	r := Analyze(spans)
	l := Ladder(r.Call(tr))
	t.Log("\n" + l)
	for _, want := range []string{
		"call " + tr + "  Call-ID call-0000\n",
		"instance sip-a/100, first message at 2026-11-25T20:00:00Z\n",
		"instance sip-b/200, first message at 2026-11-25T20:00:00.006Z\n",
		"violations:\n  [1] request_reorder: ACK (CSeq 1) arrived 0.100 ms before INVITE (CSeq 2) but left 0.300 ms after it (instance sip-a/100)\n",
	} {
		if !strings.Contains(l, want) {
			t.Errorf("missing %q", want)
		}
	}
	line := func(re string) string {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + re + `$`).FindString(l)
		if m == "" {
			t.Errorf("no line matching %s", re)
		}
		return m
	}
	line(`0\.000  \+0\.000  10\.0\.0\.1:5060 -> \[proxy\]  INVITE   1 INVITE  K`)
	line(`0\.010  \+0\.010  \[proxy\] -> 10\.0\.0\.1:5060  100      1 INVITE  K`)
	line(`6\.000  \+0\.970  10\.0\.0\.1:5060 -> \[proxy\]  ACK      1 ACK     K   <- \[1\]`)
	line(`6\.500  \+0\.300  \[proxy\] -> 10\.0\.0\.2:5070  ACK      1 ACK     K   <- \[1\]`)
	line(`7\.010  \+0\.010  \[proxy\] -> 10\.0\.0\.1:5060  200      2 INVITE  K`)
	// Instance B's section is timed by its own clock (its origin is far
	// from A's), placed by the wall time of its first message.
	line(`6\.000  \+0\.000  10\.0\.0\.1:5060 -> \[proxy\]  ACK      1 ACK  K`)
	line(`6\.020  \+0\.020  \[proxy\] -> 10\.0\.0\.2:5070  ACK      1 ACK  K`)
	if strings.Count(l, "<- [1]") != 4 {
		t.Errorf("want the 4 messages of the violation marked")
	}
	for _, ln := range strings.Split(l, "\n") {
		if strings.TrimRight(ln, " ") != ln {
			t.Errorf("trailing blanks: %q", ln)
		}
	}
}

func TestLadderFlags(t *testing.T) {
	tr := traceHex(5)
	rtx := out("INVITE", 0, 1, 500, uas)
	rtx.rtx = true
	user := in("INVITE", 180, 700, "[2001:db8::1]:5060")
	user.user = true
	spans := []Span{
		txnSpan(txnOpts{trace: tr, span: spanHex(1), inst: instA, method: "INVITE", cseq: 7, fromTag: "a", noCallID: true},
			in("INVITE", 0, 0, uac), out("INVITE", 0, 1, 10, uas), rtx, user),
	}
	r := Analyze(spans)
	l := Ladder(r.Traces[0])
	for _, want := range []string{"Call-ID (redacted)", "rtx", "[2001:db8::1]:5060 -> [proxy]  180      7 INVITE  U", "+0.490"} {
		if !strings.Contains(l, want) {
			t.Errorf("missing %q in\n%s", want, l)
		}
	}
}

func TestWriteText(t *testing.T) {
	spans := append(reinviteOvertakesACK(traceHex(6), instA), inviteTxn(traceHex(7), spanHex(1), instA, 1, 0))
	r := Analyze(spans)
	r.Notes = append(r.Notes, "a note")
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"calls                           2\n",
		"request_reorder               1\n",
		"kernel timestamps               100.0% (20 of 20 messages)\n",
		"proxy latency kernel-to-kernel  n=9  p50 0.030 ms  p99 0.500 ms  max 0.500 ms\n",
		"queue wait                      none\n",
		"instances                       1 sip-a/100\n",
		"note                            a note\n",
		"call " + traceHex(6),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	// Only violating calls get a ladder.
	if strings.Contains(out, "call "+traceHex(7)) {
		t.Errorf("ladder of a clean call:\n%s", out)
	}
}

func TestWriteJSON(t *testing.T) {
	r := Analyze(reinviteOvertakesACK(traceHex(6), instA))
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"calls", "transactions", "messages", "kernel_messages", "kernel_share_pct",
		"violation_count", "violations_by_kind", "proxy_reported_violations",
		"queue_wait_ns", "proxy_latency_kernel_ns", "instances", "violations",
		"unpaired_forwards", "incomplete_spans",
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b.String())
		}
	}
	v := m["violations"].([]any)[0].(map[string]any)
	if v["trace_id"] != traceHex(6) || v["kind"] != "request_reorder" || v["call_id"] != "call-0000" {
		t.Errorf("violation %v", v)
	}
	// An empty report has [] rather than null lists.
	b.Reset()
	empty := Analyze(nil)
	if err := empty.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"violations": []`) || !strings.Contains(b.String(), `"instances": []`) {
		t.Errorf("empty report: %s", b.String())
	}
}
