package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultConfigPassesCheckConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"default-config"}, &out, &errb); code != 0 {
		t.Fatalf("default-config exit %d: %s", code, errb.String())
	}
	path := filepath.Join(t.TempDir(), "default.yaml")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"check-config", path}, &out, &errb); code != 0 {
		t.Fatalf("check-config on the default: exit %d: %s", code, errb.String())
	}
	if !strings.HasSuffix(strings.TrimSpace(out.String()), ": OK") {
		t.Errorf("output %q", out.String())
	}
}

func TestCheckConfigReportsLineAndColumn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := "listen:\n  - address: 127.0.0.1:5060\nroutes:\n  - name: default\n    to: nowhere\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", path}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := path + ":5:9: "
	if !strings.HasPrefix(errb.String(), want) {
		t.Fatalf("error %q does not start with %q", errb.String(), want)
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}
