package audit

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeJaeger serves API v3 trace searches from a fixed set of spans, like
// Jaeger: a trace matches a search when one of its spans starts in
// [start_time_min, start_time_max]; at most num_traces traces (the most
// recent) come back, each whole; none is a 404.
type fakeJaeger struct {
	t     *testing.T
	spans []Span
	// partial: a trace comes back with only its spans that started before
	// the window's end, as if the rest had not been exported yet.
	partial bool
	// ignoreRange: the backend ignores the time range.
	ignoreRange bool
	status      int // answer every request with this status if not 0

	mu      sync.Mutex
	queries []string
}

func (f *fakeJaeger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.String())
	f.mu.Unlock()
	if f.status != 0 {
		http.Error(w, fmt.Sprintf(`{"error":{"httpCode":%d,"message":"storage down"}}`, f.status), f.status)
		return
	}
	q := r.URL.Query()
	if id, ok := strings.CutPrefix(r.URL.Path, "/api/v3/traces/"); ok {
		if q.Get("raw_traces") != "true" {
			f.t.Errorf("get trace without raw_traces: %s", r.URL)
		}
		var out []Span
		for _, s := range f.spans {
			if s.TraceID == id {
				out = append(out, s)
			}
		}
		f.reply(w, out)
		return
	}
	if r.URL.Path != "/api/v3/traces" {
		http.NotFound(w, r)
		return
	}
	for _, p := range []string{"query.service_name", "query.start_time_min", "query.start_time_max", "query.num_traces"} {
		if q.Get(p) == "" {
			http.Error(w, `{"error":{"httpCode":400,"message":"`+p+` is required"}}`, http.StatusBadRequest)
			return
		}
	}
	if q.Get("query.service_name") != "sipvigil" || q.Get("query.raw_traces") != "true" {
		f.t.Errorf("query %s", r.URL)
	}
	tmin, err1 := time.Parse(time.RFC3339Nano, q.Get("query.start_time_min"))
	tmax, err2 := time.Parse(time.RFC3339Nano, q.Get("query.start_time_max"))
	n, err3 := strconv.Atoi(q.Get("query.num_traces"))
	if err1 != nil || err2 != nil || err3 != nil {
		f.t.Errorf("query %s", r.URL)
		http.Error(w, "bad query", http.StatusBadRequest)
		return
	}
	latest := make(map[string]time.Time) // trace -> latest matching span start
	for _, s := range f.spans {
		if f.ignoreRange || !s.Start.Before(tmin) && !s.Start.After(tmax) {
			if s.Start.After(latest[s.TraceID]) {
				latest[s.TraceID] = s.Start
			}
		}
	}
	ids := slices.Collect(func(yield func(string) bool) {
		for id := range latest {
			if !yield(id) {
				return
			}
		}
	})
	slices.SortFunc(ids, func(a, b string) int { return cmp.Or(latest[b].Compare(latest[a]), strings.Compare(a, b)) })
	ids = ids[:min(n, len(ids))]
	var out []Span
	for _, s := range f.spans {
		if slices.Contains(ids, s.TraceID) && (!f.partial || !s.Start.After(tmax)) {
			out = append(out, s)
		}
	}
	f.reply(w, out)
}

func (f *fakeJaeger) reply(w http.ResponseWriter, spans []Span) {
	if len(spans) == 0 {
		http.Error(w, `{"error":{"httpCode":404,"message":"No traces found"}}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"result":%s}`, otlpJSON(spans))
}

func (f *fakeJaeger) start(t *testing.T) *Jaeger {
	f.t = t
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &Jaeger{URL: srv.URL + "/", Client: srv.Client()}
}

// shifted moves a span (and its events) in wall time.
func shifted(s Span, d time.Duration) Span {
	s.Start, s.End = s.Start.Add(d), s.End.Add(d)
	s.Events = slices.Clone(s.Events)
	for i := range s.Events {
		s.Events[i].Time = s.Events[i].Time.Add(d)
	}
	return s
}

var searchEnd = wallBase.Add(time.Hour)

func TestJaegerSearchWindows(t *testing.T) {
	f := &fakeJaeger{}
	for i := range 6 {
		f.spans = append(f.spans, shifted(inviteTxn(traceHex(i), spanHex(1), instA, 1, 0), time.Duration(i)*10*time.Minute+time.Minute))
	}
	j := f.start(t)
	var done, total int64
	j.Progress = func(d, tot int64) { done, total = d, tot }
	spans, stats, err := j.Search(context.Background(), "sipvigil", wallBase, searchEnd)
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 6 || stats.Queries != 6 || stats.Splits != 0 || len(stats.Full) != 0 {
		t.Errorf("%d spans, stats %+v", len(spans), stats)
	}
	if done != total || total != int64(time.Hour) {
		t.Errorf("progress %d/%d", done, total)
	}
	// The camelCase spellings of newer releases are sent too.
	if q := f.queries[0]; !strings.Contains(q, "query.serviceName=sipvigil") || !strings.Contains(q, "query.searchDepth=1000") {
		t.Errorf("query %s", q)
	}
}

func TestJaegerSplitsFullWindows(t *testing.T) {
	f := &fakeJaeger{}
	for i := range 25 {
		f.spans = append(f.spans, shifted(inviteTxn(traceHex(i), spanHex(1), instA, 1, 0), time.Duration(i)*7*time.Second))
	}
	j := f.start(t)
	j.NumTraces = 4
	spans, stats, err := j.Search(context.Background(), "sipvigil", wallBase, searchEnd)
	if err != nil {
		t.Fatal(err)
	}
	if r := Analyze(spans); r.Calls != 25 || r.Transactions != 25 {
		t.Errorf("calls %d, transactions %d", r.Calls, r.Transactions)
	}
	if stats.Splits == 0 || len(stats.Full) != 0 {
		t.Errorf("%d queries, %d splits, %d full windows", stats.Queries, stats.Splits, len(stats.Full))
	}
}

// TestJaegerMergesPartialTraces: a call's spans are exported at different
// times; the first window sees only its INVITE, the next the whole call.
// The violation between spans of both fetches is found.
func TestJaegerMergesPartialTraces(t *testing.T) {
	tr := traceHex(7)
	call := reinviteOvertakesACK(tr, instA)
	f := &fakeJaeger{partial: true, spans: []Span{
		shifted(call[0], 10*time.Minute-time.Second), // INVITE at the end of window 1
		shifted(call[1], 10*time.Minute+time.Second), // ACK and re-INVITE in window 2
		shifted(call[2], 10*time.Minute+time.Second),
	}}
	j := f.start(t)
	spans, _, err := j.Search(context.Background(), "sipvigil", wallBase, searchEnd)
	if err != nil {
		t.Fatal(err)
	}
	r := Analyze(spans)
	if len(spans) != 3 || r.Calls != 1 || r.ViolationCount != 1 {
		t.Errorf("%d spans, %d calls, %d violations", len(spans), r.Calls, r.ViolationCount)
	}
}

func TestJaegerNotFound(t *testing.T) {
	f := &fakeJaeger{}
	j := f.start(t)
	spans, stats, err := j.Search(context.Background(), "sipvigil", wallBase, searchEnd)
	if err != nil || len(spans) != 0 || stats.Queries != 6 {
		t.Errorf("%d spans, %+v, %v", len(spans), stats, err)
	}
	spans, err = j.Trace(context.Background(), traceHex(1))
	if err != nil || len(spans) != 0 {
		t.Errorf("trace: %d spans, %v", len(spans), err)
	}
}

func TestJaegerServerError(t *testing.T) {
	f := &fakeJaeger{status: http.StatusInternalServerError}
	j := f.start(t)
	_, _, err := j.Search(context.Background(), "sipvigil", wallBase, searchEnd)
	if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error: storage down") || !strings.Contains(err.Error(), "search 2026-11-25T20:00:00Z..") {
		t.Errorf("error %v", err)
	}
	if len(f.queries) != 1 {
		t.Errorf("went on after an error: %d queries", len(f.queries))
	}
	_, err = j.Trace(context.Background(), traceHex(1))
	if err == nil || !strings.Contains(err.Error(), "storage down") {
		t.Errorf("trace error %v", err)
	}
}

func TestJaegerBadBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"result":{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":`)
	}))
	defer srv.Close()
	_, err := (&Jaeger{URL: srv.URL}).Trace(context.Background(), traceHex(1))
	if err == nil || !strings.Contains(err.Error(), "invalid OTLP JSON") {
		t.Errorf("error %v", err)
	}
}

func TestJaegerUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, _, err := (&Jaeger{URL: url}).Search(context.Background(), "sipvigil", wallBase, searchEnd)
	if err == nil || !strings.Contains(err.Error(), "jaeger:") {
		t.Errorf("error %v", err)
	}
}

// TestJaegerIgnoringRange: a backend that returns the same full page
// whatever the window must not send the search into endless splitting.
func TestJaegerIgnoringRange(t *testing.T) {
	f := &fakeJaeger{ignoreRange: true}
	for i := range 10 {
		f.spans = append(f.spans, inviteTxn(traceHex(i), spanHex(1), instA, 1, 0))
	}
	j := f.start(t)
	j.NumTraces = 5
	_, stats, err := j.Search(context.Background(), "sipvigil", wallBase, wallBase.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if stats.Queries != 3 || stats.Splits != 0 || len(stats.Full) != 1 {
		t.Errorf("%d queries, %d splits, %d full windows", stats.Queries, stats.Splits, len(stats.Full))
	}
}

func TestJaegerTrace(t *testing.T) {
	tr := CallTraceID("abc@host")
	f := &fakeJaeger{spans: []Span{
		inviteTxn(tr, spanHex(1), instA, 1, 0),
		ackTxn(tr, spanHex(2), instA, 1, 6000, 6020),
		inviteTxn(traceHex(1), spanHex(1), instA, 1, 0),
	}}
	j := f.start(t)
	spans, err := j.Trace(context.Background(), tr)
	if err != nil || len(spans) != 2 {
		t.Fatalf("%d spans, %v", len(spans), err)
	}
	if want := "/api/v3/traces/" + tr + "?"; !strings.HasPrefix(f.queries[0], want) {
		t.Errorf("request %s", f.queries[0])
	}
}

func TestErrorMessage(t *testing.T) {
	for body, want := range map[string]string{
		`{"error":{"httpCode":500,"message":"boom"}}`: ": boom",
		"":                          "",
		"<html>\n  bad   gateway\n": ": <html> bad gateway",
		strings.Repeat("x", 300):    ": " + strings.Repeat("x", 200) + "...",
	} {
		if got := errorMessage(strings.NewReader(body)); got != want {
			t.Errorf("%q: %q, want %q", body, got, want)
		}
	}
}

// TestJaegerMinWindow: more traces at one instant than a page holds; the
// search splits down to MinWindow, then reports the window as full.
func TestJaegerMinWindow(t *testing.T) {
	f := &fakeJaeger{}
	for i := range 5 {
		f.spans = append(f.spans, shifted(inviteTxn(traceHex(i), spanHex(1), instA, 1, 0), 3*time.Minute))
	}
	j := f.start(t)
	j.NumTraces = 2
	j.MinWindow = time.Second
	spans, stats, err := j.Search(context.Background(), "sipvigil", wallBase, wallBase.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.Full) != 1 || stats.Full[0].To.Sub(stats.Full[0].From) >= 2*time.Second || stats.Queries > 25 {
		t.Errorf("%d queries, full %v", stats.Queries, stats.Full)
	}
	if len(spans) != 2 {
		t.Errorf("%d spans", len(spans))
	}
}
