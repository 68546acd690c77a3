package config

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a configuration error tied to a position in the source. Its
// text is "FILE:LINE:COL: message" so editors and CI annotate it directly.
type Error struct {
	File   string
	Line   int // 1-based
	Column int // 1-based
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the libyaml parser (not scanner) problems. yaml.v3
// prints their line 0-based while scanner lines are 1-based; we need to
// know which is which to point at the right line.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

var unknownAnchorErr = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// syntaxError converts a yaml.v3 syntax error into an *Error. yaml.v3
// only reports a line (and omits it for line 1), never a column, so the
// column is the first non-blank character of that line: close enough for
// an editor jump, and it keeps the FILE:LINE:COL contract.
func syntaxError(file string, data []byte, err error) *Error {
	text := err.Error()
	line, msg := 1, strings.TrimPrefix(text, "yaml: ")
	if m := yamlLineErr.FindStringSubmatch(text); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
	} else if m := unknownAnchorErr.FindStringSubmatch(text); m != nil {
		// The composer names the anchor but not where; find the alias.
		if off := bytes.Index(data, []byte("*"+m[1])); off >= 0 {
			line = bytes.Count(data[:off], []byte("\n")) + 1
			col := off - (bytes.LastIndexByte(data[:off], '\n') + 1) + 1
			return &Error{File: file, Line: line, Column: col, Msg: msg}
		}
	}
	return &Error{File: file, Line: line, Column: firstNonBlank(data, line), Msg: msg}
}

func firstNonBlank(data []byte, line int) int {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 1
	}
	l := lines[line-1]
	i := len(l) - len(bytes.TrimLeft(l, " \t"))
	if i >= len(l) {
		return 1
	}
	return i + 1
}

// nodeErr builds an *Error positioned at n.
func nodeErr(file string, n *yaml.Node, format string, args ...any) *Error {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	return &Error{File: file, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

// suggest returns the candidate closest to s within edit distance 2, so
// that "unknown key" errors can say what was probably meant.
func suggest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
