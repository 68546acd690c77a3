package config

import (
	"testing"
	"time"
)

func TestTracingAndMetrics(t *testing.T) {
	c := mustParse(t, minimal+`
tracing:
  endpoint: collector.example:4317
  protocol: grpc
  headers: {authorization: "Bearer x"}
  sample_ratio: 0.25
  redact: hash
  settle: 100ms
  resource_attributes: {deployment.environment: prod}
metrics: {listen: "127.0.0.1:9464"}
`)
	tr := c.Tracing
	if tr.Endpoint != "collector.example:4317" || tr.Protocol != TracingGRPC || tr.Headers["authorization"] != "Bearer x" ||
		tr.SampleRatio != 0.25 || tr.Redact != RedactHash || tr.Settle != 100*time.Millisecond ||
		tr.ResourceAttributes["deployment.environment"] != "prod" || tr.Enabled != nil {
		t.Errorf("tracing = %+v", tr)
	}
	if c.Metrics.Listen != "127.0.0.1:9464" {
		t.Errorf("metrics.listen = %q", c.Metrics.Listen)
	}
	d := mustParse(t, minimal)
	if d.Tracing.SampleRatio != -1 || d.Tracing.Endpoint != "" || d.Metrics.Listen != "" {
		t.Errorf("defaults: tracing %+v metrics %+v", d.Tracing, d.Metrics)
	}
	off := mustParse(t, minimal+"tracing: {enabled: false}\nmetrics: {listen: off}\n")
	if off.Tracing.Enabled == nil || *off.Tracing.Enabled || off.Metrics.Listen != "" {
		t.Errorf("explicit off: %+v %+v", off.Tracing, off.Metrics)
	}
}

func TestTracingErrors(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{"tracing: {sample_ratio: 1.5}\n", "bad.yaml:1:25: tracing.sample_ratio: 1.5 out of range 0-1"},
		{"tracing: {sample_ratio: lots}\n", `bad.yaml:1:25: tracing.sample_ratio: want a number from 0 to 1, got "lots"`},
		{"tracing: {protocol: thrift}\n", `bad.yaml:1:21: tracing.protocol: invalid value "thrift" (want http/protobuf, grpc)`},
		{"tracing: {headers: [a]}\n", "bad.yaml:1:20: tracing.headers: want a mapping of names to strings, got a list"},
		{"metrics: {listen: localhost:9464}\n", `bad.yaml:1:19: metrics.listen: "localhost:9464" is not an IP:port (e.g. 127.0.0.1:9464), or off`},
	} {
		_, err := parse("bad.yaml", []byte(minimal+tt.src), testResolver)
		if err == nil {
			t.Errorf("%q: no error, want %q", tt.src, tt.want)
			continue
		}
		// minimal has its own lines: compare from the column on.
		got := err.Error()
		if i, j := indexAfterLine(got), indexAfterLine(tt.want); got[i:] != tt.want[j:] {
			t.Errorf("%q:\n got %s\nwant %s", tt.src, got, tt.want)
		}
	}
}

// indexAfterLine returns the index of the column in "file:line:col: msg".
func indexAfterLine(s string) int {
	n := 0
	for i, c := range s {
		if c == ':' {
			n++
			if n == 2 {
				return i
			}
		}
	}
	return 0
}
