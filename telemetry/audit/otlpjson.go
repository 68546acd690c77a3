package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Progress is told how much of a long job is done, in units of the job's
// choosing (bytes, nanoseconds of a time range). It may be nil.
type Progress func(done, total int64)

func (p Progress) report(done, total int64) {
	if p != nil {
		p(done, total)
	}
}

// ReadOTLPJSONFiles reads spans from OpenTelemetry Collector file-exporter
// output: one {"resourceSpans":[...]} object per line, or a single object
// (pretty-printed or not) per file; a Jaeger API response saved to a file
// ({"result":{...}}) is accepted too. Files are streamed, never loaded
// whole. keep, when not nil, selects the spans to hold in memory (e.g.
// one trace for `audit --call`). Spans repeated across or within files
// are merged. progress counts bytes read over all files.
func ReadOTLPJSONFiles(ctx context.Context, paths []string, keep func(*Span) bool, progress Progress) ([]Span, error) {
	var total int64
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read OTLP JSON: %w", err)
		}
		total += fi.Size()
	}
	var set SpanSet
	var done int64
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("read OTLP JSON: %w", err)
		}
		cr := &countingReader{r: f, done: done, total: total, progress: progress}
		err = DecodeOTLPJSON(bufio.NewReaderSize(cr, 1<<20), func(s Span) error {
			if keep == nil || keep(&s) {
				set.Add(s)
			}
			return ctx.Err()
		})
		f.Close()
		done = cr.done
		if err != nil {
			return nil, fileError(p, err)
		}
	}
	return set.Spans(), nil
}

// fileError names the file, and the line when the error is a decoding
// error at a known offset.
func fileError(path string, err error) error {
	var de *decodeError
	if !errors.As(err, &de) {
		return fmt.Errorf("%s: %w", path, err)
	}
	line, lerr := lineAt(path, de.offset)
	if lerr != nil {
		return fmt.Errorf("%s: byte %d: %w", path, de.offset, de.err)
	}
	return fmt.Errorf("%s:%d: %w", path, line, de.err)
}

// lineAt returns the 1-based line number of byte offset off in a file.
func lineAt(path string, off int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(io.LimitReader(f, off), 1<<20)
	line := 1
	for {
		chunk, err := br.ReadSlice('\n')
		line += bytes.Count(chunk, []byte{'\n'})
		if err == io.EOF {
			return line, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return 0, err
		}
	}
}

type countingReader struct {
	r           io.Reader
	done, total int64
	progress    Progress
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += int64(n)
	c.progress.report(c.done, c.total)
	return n, err
}

// decodeError is a decoding failure at a byte offset of the input.
type decodeError struct {
	offset int64
	err    error
}

func (e *decodeError) Error() string { return fmt.Sprintf("byte %d: %v", e.offset, e.err) }
func (e *decodeError) Unwrap() error { return e.err }

// DecodeOTLPJSON decodes a stream of OTLP JSON TracesData objects
// (whitespace-separated, so both one-per-line and pretty-printed work)
// and calls fn for every span. It stops at the first error, from the
// input or from fn.
func DecodeOTLPJSON(r io.Reader, fn func(Span) error) error {
	dec := json.NewDecoder(r)
	in := make(interner)
	for {
		// More skips the whitespace in front of the next value, so that
		// start is where it begins (its line, for error messages).
		dec.More()
		start := dec.InputOffset()
		var td otlpTracesData
		if err := dec.Decode(&td); err == io.EOF {
			return nil
		} else if err != nil {
			// A syntax error's offset lags behind by the whitespace
			// More skipped, so never place it before the value began.
			off := start
			var se *json.SyntaxError
			if errors.As(err, &se) {
				off = max(se.Offset, start)
			}
			return &decodeError{offset: off, err: fmt.Errorf("invalid OTLP JSON: %w", err)}
		}
		if err := td.spans(in, fn); err != nil {
			if _, ok := err.(otlpError); ok {
				return &decodeError{offset: start, err: err}
			}
			return err
		}
	}
}

// otlpError is a semantic error in otherwise valid JSON.
type otlpError string

func (e otlpError) Error() string { return string(e) }

// OTLP JSON (the protobuf JSON mapping with OTLP's hex IDs), as much of
// it as the audit reads.
type otlpTracesData struct {
	ResourceSpans []otlpResourceSpans `json:"resourceSpans"`
	// Result wraps the data in Jaeger's API v3 responses.
	Result *otlpTracesData `json:"result"`
	// Error is how Jaeger's API v3 reports a failure.
	Error *struct {
		HTTPCode int    `json:"httpCode"`
		Message  string `json:"message"`
	} `json:"error"`
}

type otlpResourceSpans struct {
	Resource struct {
		Attributes []otlpKeyValue `json:"attributes"`
	} `json:"resource"`
	ScopeSpans []otlpScopeSpans `json:"scopeSpans"`
	// InstrumentationLibrarySpans is the pre-1.0 name of ScopeSpans.
	InstrumentationLibrarySpans []otlpScopeSpans `json:"instrumentationLibrarySpans"`
}

type otlpScopeSpans struct {
	Spans []otlpSpan `json:"spans"`
}

type otlpSpan struct {
	TraceID            string         `json:"traceId"`
	SpanID             string         `json:"spanId"`
	ParentSpanID       string         `json:"parentSpanId"`
	Name               string         `json:"name"`
	Kind               otlpEnum       `json:"kind"`
	StartTimeUnixNano  otlpInt        `json:"startTimeUnixNano"`
	EndTimeUnixNano    otlpInt        `json:"endTimeUnixNano"`
	Attributes         []otlpKeyValue `json:"attributes"`
	Events             []otlpEvent    `json:"events"`
	DroppedEventsCount otlpInt        `json:"droppedEventsCount"`
	Status             struct {
		Code    otlpEnum `json:"code"`
		Message string   `json:"message"`
	} `json:"status"`
}

type otlpEvent struct {
	TimeUnixNano otlpInt        `json:"timeUnixNano"`
	Name         string         `json:"name"`
	Attributes   []otlpKeyValue `json:"attributes"`
}

type otlpKeyValue struct {
	Key   string       `json:"key"`
	Value otlpAnyValue `json:"value"`
}

type otlpAnyValue struct {
	StringValue *string         `json:"stringValue"`
	BoolValue   *bool           `json:"boolValue"`
	IntValue    *otlpInt        `json:"intValue"`
	DoubleValue *otlpDouble     `json:"doubleValue"`
	BytesValue  *string         `json:"bytesValue"`
	ArrayValue  json.RawMessage `json:"arrayValue"`
	KvlistValue json.RawMessage `json:"kvlistValue"`
}

func (v otlpAnyValue) value() any {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		return int64(*v.IntValue)
	case v.BoolValue != nil:
		return *v.BoolValue
	case v.DoubleValue != nil:
		return float64(*v.DoubleValue)
	case v.BytesValue != nil:
		return *v.BytesValue
	case v.ArrayValue != nil:
		return string(v.ArrayValue)
	case v.KvlistValue != nil:
		return string(v.KvlistValue)
	}
	return nil
}

// otlpInt is a 64-bit integer as OTLP JSON writes it: a decimal string
// (uint64 values such as unix nanos may exceed int64's range only in
// theory; they are read as uint64 then converted) or a plain number.
type otlpInt int64

func (n *otlpInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "null" || s == "" {
		return nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*n = otlpInt(v)
		return nil
	}
	if v, err := strconv.ParseUint(s, 10, 64); err == nil {
		*n = otlpInt(min(v, math.MaxInt64))
		return nil
	}
	// Some encoders write integral numbers in exponent form.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
		return fmt.Errorf("not an integer: %s", b)
	}
	*n = otlpInt(f)
	return nil
}

// otlpDouble is a double: a number, or a string for the non-finite
// values ("NaN", "Infinity", "-Infinity").
type otlpDouble float64

func (d *otlpDouble) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a double: %s", b)
	}
	*d = otlpDouble(f)
	return nil
}

// otlpEnum is a protobuf enum: its number, or its name as a string.
type otlpEnum int

func (e *otlpEnum) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var name string
		if err := json.Unmarshal(b, &name); err != nil {
			return err
		}
		if v, ok := enumValue(name); ok {
			*e = otlpEnum(v)
			return nil
		}
		if v, err := strconv.Atoi(name); err == nil {
			*e = otlpEnum(v)
			return nil
		}
		return fmt.Errorf("unknown enum value %s", b)
	}
	var v int
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = otlpEnum(v)
	return nil
}

// enumValue maps the OTLP enum names that can appear as strings.
func enumValue(name string) (int, bool) {
	switch name {
	case "SPAN_KIND_UNSPECIFIED", "STATUS_CODE_UNSET":
		return 0, true
	case "SPAN_KIND_INTERNAL", "STATUS_CODE_OK":
		return 1, true
	case "SPAN_KIND_SERVER", "STATUS_CODE_ERROR":
		return 2, true
	case "SPAN_KIND_CLIENT":
		return 3, true
	case "SPAN_KIND_PRODUCER":
		return 4, true
	case "SPAN_KIND_CONSUMER":
		return 5, true
	}
	return 0, false
}

func (td *otlpTracesData) spans(in interner, fn func(Span) error) error {
	if td.Error != nil {
		return otlpError(fmt.Sprintf("backend error %d: %s", td.Error.HTTPCode, td.Error.Message))
	}
	if td.Result != nil {
		if err := td.Result.spans(in, fn); err != nil {
			return err
		}
	}
	for _, rs := range td.ResourceSpans {
		res := Resource{Attrs: in.attrs(rs.Resource.Attributes)}
		for _, ss := range append(rs.ScopeSpans, rs.InstrumentationLibrarySpans...) {
			for i := range ss.Spans {
				s, err := ss.Spans[i].span(in, res)
				if err != nil {
					return err
				}
				if err := fn(s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (o *otlpSpan) span(in interner, res Resource) (Span, error) {
	traceID, err := otlpID(o.TraceID, 16)
	if err != nil {
		return Span{}, otlpError(fmt.Sprintf("span %q: traceId: %v", o.Name, err))
	}
	spanID, err := otlpID(o.SpanID, 8)
	if err != nil {
		return Span{}, otlpError(fmt.Sprintf("span %q: spanId: %v", o.Name, err))
	}
	parent := ""
	if o.ParentSpanID != "" {
		if parent, err = otlpID(o.ParentSpanID, 8); err != nil {
			return Span{}, otlpError(fmt.Sprintf("span %q: parentSpanId: %v", o.Name, err))
		}
	}
	s := Span{
		TraceID:       traceID,
		SpanID:        spanID,
		ParentSpanID:  parent,
		Name:          o.Name,
		Kind:          int(o.Kind),
		Start:         unixNano(o.StartTimeUnixNano),
		End:           unixNano(o.EndTimeUnixNano),
		Attrs:         in.attrs(o.Attributes),
		Resource:      res,
		StatusCode:    int(o.Status.Code),
		StatusMessage: o.Status.Message,
		DroppedEvents: int(o.DroppedEventsCount),
	}
	if len(o.Events) > 0 {
		s.Events = make([]Event, len(o.Events))
		for i, e := range o.Events {
			s.Events[i] = Event{Name: in.str(e.Name), Time: unixNano(e.TimeUnixNano), Attrs: in.attrs(e.Attributes)}
		}
	}
	return s, nil
}

// otlpID normalises a trace or span ID to lowercase hex. OTLP JSON uses
// hex; the generic protobuf JSON mapping (which some tools emit) uses
// base64, recognised by its length.
func otlpID(s string, size int) (string, error) {
	if len(s) == 2*size {
		if _, err := hex.DecodeString(s); err == nil {
			return strings.ToLower(s), nil
		}
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == size {
		return hex.EncodeToString(b), nil
	}
	return "", fmt.Errorf("%q is not a %d-byte ID", s, size)
}

func unixNano(n otlpInt) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

// interner shares the strings that repeat from span to span (attribute
// keys, methods, addresses, event names) so that a large audit holds one
// copy of each instead of one per event. Long strings and, once the table
// is full, new ones are kept as they are.
type interner map[string]string

const (
	internMaxLen  = 64
	internMaxSize = 1 << 16
)

func (in interner) str(s string) string {
	if len(s) > internMaxLen {
		return s
	}
	if v, ok := in[s]; ok {
		return v
	}
	if len(in) < internMaxSize {
		in[s] = s
	}
	return s
}

func (in interner) attrs(kvs []otlpKeyValue) Attrs {
	a := make(Attrs, len(kvs))
	for _, kv := range kvs {
		v := kv.Value.value()
		if s, ok := v.(string); ok {
			v = in.str(s)
		}
		if v != nil {
			a[in.str(kv.Key)] = v
		}
	}
	return a
}
