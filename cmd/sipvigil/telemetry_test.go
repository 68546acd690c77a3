package main

import (
	"strings"
	"testing"

	"sipvigil/proxy/config"
)

// TestLogCallID: tracing.redact applies to logs as it does to spans.
func TestLogCallID(t *testing.T) {
	if f := logCallID(config.RedactNone); f != nil {
		t.Error("redact none: Call-IDs should be logged unchanged (nil func)")
	}
	const id = "a84b4c76e66710@pc33.atlanta.com"
	if got := logCallID(config.RedactHash)(id); !strings.HasPrefix(got, "sha256:") || strings.Contains(got, "atlanta") {
		t.Errorf("redact hash: %q", got)
	}
	if got := logCallID(config.RedactDrop)(id); got != "[redacted]" {
		t.Errorf("redact drop: %q", got)
	}
}

// TestTracingConfigEnv: no config and no OTEL_* variables leave tracing
// off; an endpoint in the environment turns it on; enabled: false in the
// file wins over the environment.
func TestTracingConfigEnv(t *testing.T) {
	none := func(string) string { return "" }
	tc, err := tracingConfig(config.Tracing{SampleRatio: -1}, none)
	if err != nil || tc.Enabled {
		t.Fatalf("nothing set: enabled=%v err=%v, want off", tc.Enabled, err)
	}
	env := func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			return "http://127.0.0.1:4318"
		}
		return ""
	}
	if tc, err = tracingConfig(config.Tracing{SampleRatio: -1}, env); err != nil || !tc.Enabled {
		t.Fatalf("endpoint from env: enabled=%v err=%v, want on", tc.Enabled, err)
	}
	off := false
	if tc, err = tracingConfig(config.Tracing{SampleRatio: -1, Enabled: &off}, env); err != nil || tc.Enabled {
		t.Fatalf("enabled: false with env endpoint: enabled=%v err=%v, want off", tc.Enabled, err)
	}
}
