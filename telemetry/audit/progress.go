package audit

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// ProgressBar draws a one-line bar on a terminal. It stays silent for
// jobs that finish within its delay, so that a quick audit prints nothing
// but its report, and redraws at most ten times a second. Not safe for
// concurrent use.
type ProgressBar struct {
	w     io.Writer
	label string
	delay time.Duration
	start time.Time
	last  time.Time
	drawn bool
	now   func() time.Time
	width int
}

// NewProgressBar returns a bar labelled label, drawn on w (which should be
// a terminal: the bar redraws with carriage returns).
func NewProgressBar(w io.Writer, label string) *ProgressBar {
	return &ProgressBar{w: w, label: label, delay: 500 * time.Millisecond, now: time.Now, width: 30}
}

// Update sets the progress, the bar's Progress function.
func (p *ProgressBar) Update(done, total int64) {
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	if now.Sub(p.start) < p.delay || now.Sub(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = now
	frac := 0.0
	if total > 0 {
		frac = min(max(float64(done)/float64(total), 0), 1)
	}
	n := int(frac * float64(p.width))
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%%", p.label, strings.Repeat("#", n), strings.Repeat(" ", p.width-n), 100*frac)
	p.drawn = true
}

// Done erases the bar, if it was drawn, so the report starts on a clean
// line.
func (p *ProgressBar) Done() {
	if p.drawn {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", len(p.label)+p.width+8))
		p.drawn = false
	}
	p.start = time.Time{}
}
