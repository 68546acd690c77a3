package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Jaeger reads traces from a Jaeger v2 query service through its HTTP API
// v3, which answers in OTLP JSON.
//
// A search returns at most NumTraces traces and says nothing about what
// it left out, so Search covers the range with windows and splits a window
// in two whenever it comes back full, down to MinWindow.
type Jaeger struct {
	// URL is the query service's base URL, e.g. http://jaeger:16686.
	URL string
	// Client defaults to http.DefaultClient.
	Client *http.Client
	// NumTraces is the search limit per window (default 1000).
	NumTraces int
	// Window is the initial window size (default 10 minutes).
	Window time.Duration
	// MinWindow is the smallest window split further (default 10 ms).
	MinWindow time.Duration
	// Progress, if not nil, is told how many nanoseconds of the searched
	// range are covered.
	Progress Progress
}

// SearchStats describes how a search went.
type SearchStats struct {
	Queries int // HTTP requests made
	Splits  int // windows split because they came back full
	// Full lists windows that were still full when they could not be
	// split any further: traces in them may be missing from the result.
	Full []Window
}

// Window is a time range of a search.
type Window struct {
	From, To time.Time
}

func (w Window) String() string {
	return w.From.UTC().Format(time.RFC3339Nano) + ".." + w.To.UTC().Format(time.RFC3339Nano)
}

func (j *Jaeger) numTraces() int           { return orDefault(j.NumTraces, 1000) }
func (j *Jaeger) window() time.Duration    { return orDefault(j.Window, 10*time.Minute) }
func (j *Jaeger) minWindow() time.Duration { return orDefault(j.MinWindow, 10*time.Millisecond) }

// orDefault returns v, or def when v is not positive.
func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Search returns the spans of every trace of service with a span starting
// in [from, to]. A trace seen in several windows is merged.
func (j *Jaeger) Search(ctx context.Context, service string, from, to time.Time) ([]Span, SearchStats, error) {
	s := search{j: j, service: service, total: int64(to.Sub(from))}
	for a := from; a.Before(to); {
		b := a.Add(j.window())
		if b.After(to) {
			b = to
		}
		w := Window{a, b}
		traces, err := s.query(ctx, w)
		if err == nil {
			err = s.cover(ctx, w, traces)
		}
		if err != nil {
			return nil, s.stats, err
		}
		a = b
	}
	return s.set.Spans(), s.stats, nil
}

type search struct {
	j           *Jaeger
	service     string
	set         SpanSet
	stats       SearchStats
	done, total int64
}

// query runs the search for one window, adds the spans to the result and
// returns the IDs of the traces it found.
func (s *search) query(ctx context.Context, w Window) (map[string]bool, error) {
	q := url.Values{}
	for _, p := range [][2]string{
		{"service_name", s.service},
		{"start_time_min", w.From.UTC().Format(time.RFC3339Nano)},
		{"start_time_max", w.To.UTC().Format(time.RFC3339Nano)},
		{"num_traces", strconv.Itoa(s.j.numTraces())},
		{"raw_traces", "true"},
	} {
		q.Set("query."+p[0], p[1])
	}
	// Newer Jaeger releases name these in camelCase (num_traces became
	// searchDepth) and announce the removal of the snake_case aliases;
	// send both spellings so either kind of release understands.
	q.Set("query.serviceName", q.Get("query.service_name"))
	q.Set("query.startTimeMin", q.Get("query.start_time_min"))
	q.Set("query.startTimeMax", q.Get("query.start_time_max"))
	q.Set("query.searchDepth", q.Get("query.num_traces"))
	q.Set("query.rawTraces", "true")

	s.stats.Queries++
	traces := make(map[string]bool)
	err := s.j.get(ctx, "/api/v3/traces", q, func(sp Span) {
		traces[sp.TraceID] = true
		s.set.Add(sp)
	})
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", w, err)
	}
	return traces, nil
}

// cover makes sure w is covered, given the traces its query returned:
// when that was a full page, it queries both halves and covers them in
// turn. If both halves return exactly the traces of the whole, the
// backend is not narrowing the search by time (or every trace spans the
// split), and splitting further would only repeat them: w is recorded as
// full instead.
func (s *search) cover(ctx context.Context, w Window, traces map[string]bool) error {
	half := w.To.Sub(w.From) / 2
	if len(traces) >= s.j.numTraces() {
		if half < s.j.minWindow() {
			s.stats.Full = append(s.stats.Full, w)
		} else {
			a, b := Window{w.From, w.From.Add(half)}, Window{w.From.Add(half), w.To}
			ta, err := s.query(ctx, a)
			if err != nil {
				return err
			}
			tb, err := s.query(ctx, b)
			if err != nil {
				return err
			}
			if maps.Equal(ta, traces) && maps.Equal(tb, traces) {
				s.stats.Full = append(s.stats.Full, w)
			} else {
				s.stats.Splits++
				if err := s.cover(ctx, a, ta); err != nil {
					return err
				}
				return s.cover(ctx, b, tb)
			}
		}
	}
	s.done += int64(w.To.Sub(w.From))
	s.j.Progress.report(s.done, s.total)
	return nil
}

// Trace returns the spans of one trace (ID as 32 hex digits), none when
// the backend does not have it.
func (j *Jaeger) Trace(ctx context.Context, traceID string) ([]Span, error) {
	q := url.Values{"raw_traces": {"true"}, "rawTraces": {"true"}}
	var set SpanSet
	err := j.get(ctx, "/api/v3/traces/"+url.PathEscape(traceID), q, set.Add)
	if err != nil {
		return nil, fmt.Errorf("get trace %s: %w", traceID, err)
	}
	return set.Spans(), nil
}

// get fetches an API v3 traces endpoint and hands every span to fn. 404 is
// the API's answer for "no traces": no spans, no error.
func (j *Jaeger) get(ctx context.Context, path string, q url.Values, fn func(Span)) error {
	u := strings.TrimRight(j.URL, "/") + path + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("jaeger: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	client := j.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("jaeger: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("jaeger: GET %s: %s%s", path, resp.Status, errorMessage(resp.Body))
	}
	err = DecodeOTLPJSON(resp.Body, func(s Span) error {
		fn(s)
		return nil
	})
	if err != nil {
		return fmt.Errorf("jaeger: GET %s: %w", path, err)
	}
	return nil
}

// errorMessage extracts the message of an API v3 error body
// ({"error":{"httpCode":..,"message":..}}), or a short excerpt of a body
// that is not one, prefixed with ": ".
func errorMessage(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return ": " + e.Error.Message
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return ""
	}
	return ": " + s
}
