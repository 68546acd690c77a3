package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// otlpCall is one call as the collector's file exporter writes it: an
// INVITE transaction, an ACK and a re-INVITE from the same side. With
// reorder the re-INVITE leaves before the ACK that arrived first.
func otlpCall(callID string, reorder bool) string {
	sum := sha256.Sum256([]byte("sipvigil/call-id\x00" + callID))
	trace := hex.EncodeToString(sum[:16])
	type ev struct {
		name                 string
		method               string
		status, relays, mono int
	}
	ackOut := 6200
	if reorder {
		ackOut = 6500
	}
	txns := []struct {
		span, method string
		cseq         int
		evs          []ev
	}{
		{"0000000000000001", "INVITE", 1, []ev{{"sip.in", "INVITE", 0, 0, 0}, {"sip.out", "INVITE", 0, 1, 40}, {"sip.in", "INVITE", 200, 0, 5000}, {"sip.out", "INVITE", 200, 3, 5030}}},
		{"0000000000000002", "ACK", 1, []ev{{"sip.in", "ACK", 0, 0, 6000}, {"sip.out", "ACK", 0, 1, ackOut}}},
		{"0000000000000003", "INVITE", 2, []ev{{"sip.in", "INVITE", 0, 0, 6100}, {"sip.out", "INVITE", 0, 1, 6300}}},
	}
	str := func(k, v string) string { return fmt.Sprintf(`{"key":%q,"value":{"stringValue":%q}}`, k, v) }
	num := func(k string, v int) string { return fmt.Sprintf(`{"key":%q,"value":{"intValue":"%d"}}`, k, v) }
	var spans []string
	for _, t := range txns {
		var evs []string
		for i, e := range t.evs {
			attrs := []string{num("sipvigil.msg.index", i), str("sip.method", e.method), str("sipvigil.ts.source", "kernel"),
				num("sipvigil.mono_ns", 1_000_000_000+e.mono*1000), str("network.peer.address", "10.0.0.1"), num("network.peer.port", 5060)}
			if e.status != 0 {
				attrs = append(attrs, num("sip.status_code", e.status))
			}
			if e.name == "sip.out" {
				attrs = append(attrs, num("sipvigil.msg.relays", e.relays))
			}
			evs = append(evs, fmt.Sprintf(`{"timeUnixNano":"%d","name":%q,"attributes":[%s]}`, 1795636800000000000+e.mono*1000, e.name, strings.Join(attrs, ",")))
		}
		attrs := []string{str("sip.method", t.method), num("sip.cseq", t.cseq), str("sip.call_id", callID), str("sip.from.tag", "a"), str("sipvigil.txn.kind", "server")}
		spans = append(spans, fmt.Sprintf(`{"traceId":%q,"spanId":%q,"name":%q,"kind":2,"startTimeUnixNano":"1795636800000000000","endTimeUnixNano":"1795636800010000000","attributes":[%s],"events":[%s],"status":{}}`,
			trace, t.span, t.method, strings.Join(attrs, ","), strings.Join(evs, ",")))
	}
	res := `{"attributes":[` + str("service.name", "sipvigil") + "," + str("host.name", "sip-a") + "," + str("service.instance.id", "sip-a/1") + `]}`
	return fmt.Sprintf(`{"resourceSpans":[{"resource":%s,"scopeSpans":[{"spans":[%s]}]}]}`, res, strings.Join(spans, ","))
}

func writeTemp(t *testing.T, name string, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runA(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runAudit(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditFlagErrors(t *testing.T) {
	f := writeTemp(t, "a.json", otlpCall("c1", false))
	for _, args := range [][]string{
		{},
		{"--jaeger", "http://x", "--otlp-json", f},
		{"--jaeger", "http://x", "--trace-id", "abc", "--call", "c1"},
		{"--jaeger", "http://x", "--trace-id", "xyz"},
		{"--jaeger", "http://x", "--trace-id", strings.Repeat("a", 33)},
		{"--jaeger", "ftp://x"},
		{"--jaeger", "http://x", "--since", "-1h"},
		{"--jaeger", "http://x", "--since", "soon"},
		{"--jaeger", "http://x", "--call", "c1", "--since", "1h"},
		{"--otlp-json", f, "--service", "x"},
		{"--frobnicate"},
		{f},
		{"--call", "", "--otlp-json", f},
	} {
		code, out, errs := runA(args...)
		if code != 2 || out != "" || !strings.HasPrefix(errs, "sipvigil audit: ") || strings.Count(errs, "\n") != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	code, out, _ := runA("--help")
	if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "-otlp-json") {
		t.Errorf("help: %d %q", code, out)
	}
}

func TestAuditFiles(t *testing.T) {
	clean := writeTemp(t, "clean.json", otlpCall("c1", false), otlpCall("c2", false))
	bad := writeTemp(t, "bad.json", otlpCall("c3", true))

	code, out, errs := runA("--otlp-json", clean)
	if code != 0 || errs != "" || !strings.Contains(out, "calls                           2") {
		t.Errorf("clean: %d %q %q", code, out, errs)
	}
	// Files after --otlp-json, flags after them.
	code, out, errs = runA("--otlp-json", clean, bad, "--json")
	var rep struct {
		Calls      int `json:"calls"`
		Violations []struct {
			CallID string `json:"call_id"`
			Kind   string `json:"kind"`
		} `json:"violations"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v: %s", err, out)
	}
	if code != 1 || errs != "" || rep.Calls != 3 || len(rep.Violations) != 1 || rep.Violations[0].CallID != "c3" || rep.Violations[0].Kind != "request_reorder" {
		t.Errorf("mixed: %d %+v %q", code, rep, errs)
	}
	code, out, _ = runA("--otlp-json", bad)
	if code != 1 || !strings.Contains(out, "Call-ID c3") || !strings.Contains(out, "<- [1]") {
		t.Errorf("text: %d\n%s", code, out)
	}

	code, out, _ = runA("--otlp-json", clean, "--otlp-json", bad, "--call", "c3")
	if code != 1 || !strings.HasPrefix(out, "call ") || !strings.Contains(out, "request_reorder") {
		t.Errorf("call c3: %d\n%s", code, out)
	}
	t.Log("\n" + out)
	code, out, _ = runA("--otlp-json", clean, bad, "--call", "c1")
	if code != 0 || !strings.Contains(out, "Call-ID c1") {
		t.Errorf("call c1: %d\n%s", code, out)
	}
	code, out, errs = runA("--otlp-json", clean, "--call", "nope")
	if code != 2 || out != "" || !strings.Contains(errs, `call "nope"`) {
		t.Errorf("call nope: %d %q %q", code, out, errs)
	}
	code, out, _ = runA("--otlp-json", bad, "--call", "c3", "--json")
	if code != 1 || !json.Valid([]byte(out)) || !strings.Contains(out, `"messages"`) {
		t.Errorf("call json: %d %s", code, out)
	}

	broken := writeTemp(t, "broken.json", otlpCall("c1", false), `{"resourceSpans":[`)
	code, _, errs = runA("--otlp-json", broken)
	if code != 2 || !strings.Contains(errs, "broken.json:2: invalid OTLP JSON") || strings.Count(errs, "\n") != 1 {
		t.Errorf("broken: %d %q", code, errs)
	}
	code, _, errs = runA("--otlp-json", filepath.Join(t.TempDir(), "missing.json"))
	if code != 2 || !strings.Contains(errs, "missing.json") {
		t.Errorf("missing: %d %q", code, errs)
	}
}

func TestAuditJaeger(t *testing.T) {
	calls := map[string]string{}
	for _, c := range []string{"c1", "c2"} {
		sum := sha256.Sum256([]byte("sipvigil/call-id\x00" + c))
		calls[hex.EncodeToString(sum[:16])] = otlpCall(c, c == "c2")
	}
	var searches int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/api/v3/traces/"); ok {
			if body, ok := calls[id]; ok {
				fmt.Fprintf(w, `{"result":%s}`, body)
				return
			}
			http.Error(w, `{"error":{"httpCode":404,"message":"trace not found"}}`, http.StatusNotFound)
			return
		}
		searches++
		if searches > 1 {
			http.Error(w, `{"error":{"httpCode":404,"message":"No traces found"}}`, http.StatusNotFound)
			return
		}
		var all []string
		for _, c := range calls {
			all = append(all, c)
		}
		// Both calls in one response: merge their resourceSpans.
		var merged []json.RawMessage
		for _, c := range all {
			var td struct {
				RS []json.RawMessage `json:"resourceSpans"`
			}
			json.Unmarshal([]byte(c), &td)
			merged = append(merged, td.RS...)
		}
		b, _ := json.Marshal(map[string]any{"result": map[string]any{"resourceSpans": merged}})
		w.Write(b)
	}))
	defer srv.Close()

	code, out, errs := runA("--jaeger", srv.URL, "--since", "30m")
	if code != 1 || errs != "" || !strings.Contains(out, "calls                           2") || !strings.Contains(out, "Call-ID c2") {
		t.Errorf("search: %d %q\n%s", code, errs, out)
	}
	if searches != 3 {
		t.Errorf("%d searches for 30m, want 3 windows of 10m", searches)
	}
	code, out, _ = runA("--jaeger", srv.URL, "--call", "c2")
	if code != 1 || !strings.Contains(out, "Call-ID c2") {
		t.Errorf("call: %d\n%s", code, out)
	}
	code, _, _ = runA("--jaeger", srv.URL, "--call", "c1")
	if code != 0 {
		t.Errorf("clean call: %d", code)
	}
	code, _, errs = runA("--jaeger", srv.URL, "--call", "c9")
	if code != 2 || !strings.Contains(errs, "not found") {
		t.Errorf("unknown call: %d %q", code, errs)
	}
	var id string
	for k := range calls {
		id = strings.ToUpper(k)
		break
	}
	code, out, _ = runA("--jaeger", srv.URL, "--trace-id", id, "--json")
	if code > 1 || !json.Valid([]byte(out)) {
		t.Errorf("trace-id: %d %s", code, out)
	}
	code, _, errs = runA("--jaeger", srv.URL, "--trace-id", "abc")
	if code != 2 || !strings.Contains(errs, "trace 00000000000000000000000000000abc not found") {
		t.Errorf("trace-id not found: %d %q", code, errs)
	}

	srv.Close()
	code, _, errs = runA("--jaeger", srv.URL)
	if code != 2 || !strings.Contains(errs, "jaeger:") || strings.Count(errs, "\n") != 1 {
		t.Errorf("unreachable: %d %q", code, errs)
	}
}
