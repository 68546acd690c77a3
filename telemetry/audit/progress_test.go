package audit

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	now := time.Unix(0, 0)
	p := NewProgressBar(&b, "fetching")
	p.now = func() time.Time { return now }

	// A job done within the delay draws nothing, and Done erases nothing.
	p.Update(0, 10)
	now = now.Add(100 * time.Millisecond)
	p.Update(10, 10)
	p.Done()
	if b.Len() != 0 {
		t.Fatalf("quick job drew %q", b.String())
	}

	p.Update(0, 100)
	now = now.Add(time.Second)
	p.Update(50, 100)
	if got := b.String(); got != "\rfetching ["+strings.Repeat("#", 15)+strings.Repeat(" ", 15)+"]  50%" {
		t.Errorf("bar %q", got)
	}
	b.Reset()
	now = now.Add(10 * time.Millisecond)
	p.Update(60, 100) // too soon to redraw
	if b.Len() != 0 {
		t.Errorf("redrew after 10ms: %q", b.String())
	}
	p.Update(100, 100) // but the end is always drawn
	if !strings.HasSuffix(b.String(), "] 100%") {
		t.Errorf("end %q", b.String())
	}
	b.Reset()
	p.Done()
	if got := b.String(); !strings.HasPrefix(got, "\r ") || !strings.HasSuffix(got, " \r") || strings.TrimSpace(got) != "" {
		t.Errorf("erase %q", got)
	}
}
