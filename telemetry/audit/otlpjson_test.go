package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// collectorLine is one line as the collector's file exporter writes it,
// with the encodings the decoder must accept: intValue as a string and as
// a number, doubles, bools, arrays, kind and status as numbers.
const collectorLine = `{"resourceSpans":[{"resource":{"attributes":[` +
	`{"key":"service.name","value":{"stringValue":"sipvigil"}},` +
	`{"key":"host.name","value":{"stringValue":"sip-a"}},` +
	`{"key":"service.instance.id","value":{"stringValue":"sip-a/100"}}]},` +
	`"scopeSpans":[{"scope":{"name":"sipvigil","version":"1"},"spans":[{` +
	`"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"",` +
	`"name":"INVITE","kind":2,"startTimeUnixNano":"1795636800000000000","endTimeUnixNano":"1795636800005030000",` +
	`"attributes":[{"key":"sip.method","value":{"stringValue":"INVITE"}},` +
	`{"key":"sip.cseq","value":{"intValue":"1"}},` +
	`{"key":"sip.status_code","value":{"intValue":200}},` +
	`{"key":"sipvigil.txn.kind","value":{"stringValue":"server"}},` +
	`{"key":"weight","value":{"doubleValue":0.5}},` +
	`{"key":"list","value":{"arrayValue":{"values":[{"stringValue":"x"}]}}}],` +
	`"droppedEventsCount":3,` +
	`"events":[{"timeUnixNano":"1795636800000000000","name":"sip.in","attributes":[` +
	`{"key":"sipvigil.msg.index","value":{"intValue":"0"}},` +
	`{"key":"sip.method","value":{"stringValue":"INVITE"}},` +
	`{"key":"sipvigil.mono_ns","value":{"intValue":"1000000000"}},` +
	`{"key":"sipvigil.ts.source","value":{"stringValue":"kernel"}},` +
	`{"key":"sipvigil.msg.retransmission","value":{"boolValue":false}}]}],` +
	`"status":{"code":2,"message":"order violation"}}]}]}]}`

func TestDecodeCollectorLine(t *testing.T) {
	var got []Span
	err := DecodeOTLPJSON(strings.NewReader(collectorLine+"\n"+collectorLine+"\n"), func(s Span) error {
		got = append(got, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d spans", len(got))
	}
	s := got[0]
	if s.TraceID != "5b8efff798038103d269b633813fc60c" || s.SpanID != "eee19b7ec3c1b174" || s.ParentSpanID != "" {
		t.Errorf("IDs %q %q %q", s.TraceID, s.SpanID, s.ParentSpanID)
	}
	if s.Name != "INVITE" || s.Kind != KindServer || s.StatusCode != 2 || s.StatusMessage != "order violation" || s.DroppedEvents != 3 {
		t.Errorf("span %+v", s)
	}
	if !s.Start.Equal(time.Unix(0, 1795636800000000000)) || s.End.Sub(s.Start) != 5030*time.Microsecond {
		t.Errorf("times %v %v", s.Start, s.End)
	}
	if n, ok := s.Attrs.Int("sip.cseq"); !ok || n != 1 {
		t.Errorf("cseq %v", s.Attrs["sip.cseq"])
	}
	if n, ok := s.Attrs.Int("sip.status_code"); !ok || n != 200 {
		t.Errorf("status %v", s.Attrs["sip.status_code"])
	}
	if s.Attrs["weight"] != 0.5 || s.Attrs.Str("list") == "" {
		t.Errorf("attrs %v", s.Attrs)
	}
	if s.Resource.Instance() != instA {
		t.Errorf("instance %v", s.Resource.Instance())
	}
	e := s.Events[0]
	if e.Name != "sip.in" || !e.Time.Equal(s.Start) || e.Attrs.Bool("sipvigil.msg.retransmission") {
		t.Errorf("event %+v", e)
	}
	if n, _ := e.Attrs.Int("sipvigil.mono_ns"); n != 1_000_000_000 {
		t.Errorf("mono %d", n)
	}
}

func TestDecodeVariants(t *testing.T) {
	for name, in := range map[string]string{
		"pretty": `{
  "resourceSpans": [ { "resource": {}, "scopeSpans": [ { "spans": [
    { "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
      "name": "x", "kind": "SPAN_KIND_INTERNAL", "startTimeUnixNano": 1795636800000000000,
      "status": { "code": "STATUS_CODE_ERROR" } } ] } ] } ]
}
`,
		"jaeger wrapper": `{"result":{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","kind":1,"status":{"code":2}}]}]}]}}`,
		"base64 IDs":     `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":"7uGbfsPBsXQ=","name":"x","kind":1,"status":{"code":2}}]}]}]}`,
		"legacy":         `{"resourceSpans":[{"instrumentationLibrarySpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","kind":1,"status":{"code":2}}]}]}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			var got []Span
			if err := DecodeOTLPJSON(strings.NewReader(in), func(s Span) error { got = append(got, s); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].TraceID != "5b8efff798038103d269b633813fc60c" || got[0].SpanID != "eee19b7ec3c1b174" ||
				got[0].Kind != KindInternal || got[0].StatusCode != 2 {
				t.Fatalf("%+v", got)
			}
		})
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReadFilesRoundTrip: spans written to files (one object per line,
// split over two files with a repeat, and one pretty-printed file) read
// back to the same audit as the spans themselves.
func TestReadFilesRoundTrip(t *testing.T) {
	var spans []Span
	for i := range 3 {
		spans = append(spans, reinviteOvertakesACK(traceHex(80+i), instA)...)
	}
	spans = append(spans, queueSpan(traceHex(80), spanHex(9), spanHex(1), instA, 777))
	var f1, f2 bytes.Buffer
	for i, s := range spans {
		line := append(otlpJSON([]Span{s}), '\n')
		if i%2 == 0 {
			f1.Write(line)
		} else {
			f2.Write(line)
		}
		if i == 3 {
			f2.Write(line) // the same span again, in the other file
		}
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, otlpJSON(spans[:2]), "", "  "); err != nil {
		t.Fatal(err)
	}
	paths := []string{writeFile(t, "a.json", f1.Bytes()), writeFile(t, "b.json", f2.Bytes()), writeFile(t, "c.json", pretty.Bytes())}

	var last, total int64
	got, err := ReadOTLPJSONFiles(context.Background(), paths, nil, func(done, tot int64) { last, total = done, tot })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(spans) {
		t.Fatalf("%d spans, want %d", len(got), len(spans))
	}
	if want := int64(f1.Len() + f2.Len() + pretty.Len()); last != want || total != want {
		t.Errorf("progress %d/%d, want %d", last, total, want)
	}
	want, have := Analyze(spans), Analyze(got)
	want.Traces, have.Traces = nil, nil
	if !reflect.DeepEqual(have, want) {
		t.Errorf("got %+v\nwant %+v", have, want)
	}
	if have.ViolationCount != 3 {
		t.Errorf("violations %d", have.ViolationCount)
	}

	// keep selects one trace.
	one := traceHex(81)
	got, err = ReadOTLPJSONFiles(context.Background(), paths, func(s *Span) bool { return s.TraceID == one }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("kept %d spans", len(got))
	}
}

func TestReadFilesErrors(t *testing.T) {
	good := string(otlpJSON([]Span{inviteTxn(traceHex(90), spanHex(1), instA, 1, 0)}))
	for name, tc := range map[string]struct {
		data, want string
	}{
		"syntax":    {good + "\n" + good + "\n{\"resourceSpans\": [nope]}\n", "bad.json:3: invalid OTLP JSON"},
		"truncated": {good + "\n" + good[:len(good)/2], "bad.json:2: invalid OTLP JSON: unexpected EOF"},
		"bad id":    {good + "\n" + strings.Replace(good, traceHex(90), "xyz", 1) + "\n", `bad.json:2: span "INVITE": traceId: "xyz" is not a 16-byte ID`},
		"bad int":   {strings.Replace(good, `"intValue":"1"`, `"intValue":"one"`, 1), `bad.json:1: invalid OTLP JSON: not an integer: "one"`},
		"not otlp":  {"hello\n", "bad.json:1: invalid OTLP JSON: invalid character 'h'"},
	} {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, "bad.json", []byte(tc.data))
			_, err := ReadOTLPJSONFiles(context.Background(), []string{p}, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	_, err := ReadOTLPJSONFiles(context.Background(), []string{filepath.Join(t.TempDir(), "missing.json")}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

// TestReadLongLine: one record far larger than any default line buffer.
func TestReadLongLine(t *testing.T) {
	var spans []Span
	for i := range 1000 {
		spans = append(spans, inviteTxn(traceHex(1000+i), spanHex(1), instA, 1, 0))
	}
	data := otlpJSON(spans)
	if len(data) < 2<<20 {
		t.Fatalf("only %d bytes", len(data))
	}
	got, err := ReadOTLPJSONFiles(context.Background(), []string{writeFile(t, "big.json", append(data, '\n'))}, nil, nil)
	if err != nil || len(got) != len(spans) {
		t.Fatalf("%d spans, %v", len(got), err)
	}
}

func TestReadFilesCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := writeFile(t, "a.json", otlpJSON([]Span{inviteTxn(traceHex(90), spanHex(1), instA, 1, 0)}))
	if _, err := ReadOTLPJSONFiles(ctx, []string{p}, nil, nil); err == nil {
		t.Fatal("no error")
	}
}
