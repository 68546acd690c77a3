package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"sipvigil/telemetry/audit"
)

const auditUsage = `Usage:
  sipvigil audit --jaeger URL [--service NAME] [--since DURATION] [--json]
  sipvigil audit --jaeger URL --trace-id HEX [--json]
  sipvigil audit --otlp-json FILE... [--json]
  sipvigil audit (--jaeger URL | --otlp-json FILE...) --call CALL-ID [--json]

Re-checks message order from the proxy's traces (docs/tracing.md): the
forwards of every transaction and dialog are rebuilt from the message
events and checked again, whatever the proxy itself reported. Prints a
summary and the ladder of every call with a violation; --call prints the
ladder of one call.

Exit status: 0 no violation, 1 violations found, 2 error (or --call not
found).

Flags:
`

// auditOptions are the parsed command line of sipvigil audit.
type auditOptions struct {
	jaeger  string
	service string
	since   time.Duration
	traceID string // normalised: 32 lowercase hex digits
	callID  string
	files   []string
	json    bool
}

// runAudit implements `sipvigil audit`.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseAuditFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sipvigil audit: %v (see sipvigil audit --help)\n", err)
		return 2
	}
	code, err := runAuditOpts(ctx, opts, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sipvigil audit: %v\n", err)
		return 2
	}
	return code
}

func parseAuditFlags(args []string, stdout io.Writer) (auditOptions, error) {
	var o auditOptions
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.jaeger, "jaeger", "", "Jaeger query service base `URL` (API v3), e.g. http://jaeger:16686")
	fs.StringVar(&o.service, "service", "sipvigil", "service `name` to search for")
	fs.DurationVar(&o.since, "since", time.Hour, "search the traces of this last `duration`")
	fs.StringVar(&o.traceID, "trace-id", "", "audit one trace, by its `hex` ID")
	fs.StringVar(&o.callID, "call", "", "print the ladder of the call with this `Call-ID`")
	fs.Func("otlp-json", "read spans from OTLP JSON `file`s (collector file exporter); more files may follow", func(v string) error {
		o.files = append(o.files, v)
		return nil
	})
	fs.BoolVar(&o.json, "json", false, "print JSON instead of text")

	// --otlp-json takes several files: positional arguments after it
	// are more files, and flags may follow them.
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, auditUsage)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
			}
			return o, err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(o.files) == 0 {
			return o, fmt.Errorf("unexpected argument %q", rest[0])
		}
		o.files = append(o.files, rest[0])
		rest = rest[1:]
	}

	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case o.jaeger == "" && len(o.files) == 0:
		return o, errors.New("one of --jaeger or --otlp-json is required")
	case o.jaeger != "" && len(o.files) > 0:
		return o, errors.New("--jaeger and --otlp-json are exclusive")
	case set["trace-id"] && set["call"]:
		return o, errors.New("--trace-id and --call are exclusive")
	case set["call"] && o.callID == "":
		return o, errors.New("--call needs a Call-ID")
	case (set["since"] || set["service"]) && (o.jaeger == "" || set["trace-id"] || set["call"]):
		return o, errors.New("--since and --service apply only to a Jaeger search")
	case o.since <= 0:
		return o, fmt.Errorf("--since %v: must be positive", o.since)
	}
	if o.jaeger != "" {
		u, err := url.Parse(o.jaeger)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return o, fmt.Errorf("--jaeger %q: want an http(s) URL such as http://jaeger:16686", o.jaeger)
		}
	}
	if set["trace-id"] {
		id, err := normaliseTraceID(o.traceID)
		if err != nil {
			return o, err
		}
		o.traceID = id
	}
	if set["call"] {
		o.traceID = audit.CallTraceID(o.callID)
	}
	return o, nil
}

// normaliseTraceID accepts up to 32 hex digits (a 64-bit ID is padded, as
// Jaeger does) and returns 32 lowercase ones.
func normaliseTraceID(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 0 || len(s) > 32 {
		return "", fmt.Errorf("--trace-id %q: want up to 32 hex digits", s)
	}
	s = strings.Repeat("0", 32-len(s)) + s
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("--trace-id %q: want up to 32 hex digits", s)
	}
	return s, nil
}

// runAuditOpts fetches, analyses and prints; it returns the exit code for a
// completed audit, or an error (exit 2).
func runAuditOpts(ctx context.Context, o auditOptions, stdout, stderr io.Writer) (int, error) {
	var progress audit.Progress
	var bar *audit.ProgressBar
	if isTerminal(stderr) {
		label := "reading spans"
		if o.jaeger != "" {
			label = "fetching traces"
		}
		bar = audit.NewProgressBar(stderr, label)
		progress = bar.Update
		defer bar.Done()
	}

	var spans []audit.Span
	var notes []string
	var err error
	switch {
	case o.jaeger != "" && o.traceID != "":
		j := &audit.Jaeger{URL: o.jaeger, Client: &http.Client{Timeout: 2 * time.Minute}}
		spans, err = j.Trace(ctx, o.traceID)
	case o.jaeger != "":
		j := &audit.Jaeger{URL: o.jaeger, Client: &http.Client{Timeout: 2 * time.Minute}, Progress: progress}
		now := time.Now()
		var stats audit.SearchStats
		spans, stats, err = j.Search(ctx, o.service, now.Add(-o.since), now)
		if n := len(stats.Full); n > 0 {
			notes = append(notes, fmt.Sprintf("%d search window(s) still returned a full page when no longer split (first: %s): calls in them may be missing", n, stats.Full[0]))
		}
	default:
		var keep func(*audit.Span) bool
		if o.traceID != "" {
			keep = func(s *audit.Span) bool { return s.TraceID == o.traceID }
		}
		spans, err = audit.ReadOTLPJSONFiles(ctx, o.files, keep, progress)
	}
	if err != nil {
		return 2, err
	}
	if o.traceID != "" && len(spans) == 0 {
		if o.callID != "" {
			return 2, fmt.Errorf("call %q (trace %s) not found", o.callID, o.traceID)
		}
		return 2, fmt.Errorf("trace %s not found", o.traceID)
	}

	// The bar stays up (at 100%) through the analysis, then makes way for
	// the report.
	report := audit.Analyze(spans)
	report.Notes = append(report.Notes, notes...)
	if bar != nil {
		bar.Done()
	}

	if o.callID != "" {
		c := report.Call(o.traceID)
		if o.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			err = enc.Encode(c)
		} else {
			_, err = io.WriteString(stdout, audit.Ladder(c))
		}
		if err != nil {
			return 2, fmt.Errorf("write: %w", err)
		}
		if len(c.Violations) > 0 {
			return 1, nil
		}
		return 0, nil
	}

	if o.json {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteText(stdout)
	}
	if err != nil {
		return 2, fmt.Errorf("write: %w", err)
	}
	if report.ViolationCount > 0 {
		return 1, nil
	}
	return 0, nil
}

// isTerminal reports whether w is a terminal, where a progress bar may
// redraw itself; anywhere else (a file, a pipe, CI logs) it would only be
// noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
