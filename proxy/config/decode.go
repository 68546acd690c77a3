package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks yaml.Node trees by hand instead of using struct tags: that
// is what lets every error, including a wrong type or an unknown key,
// carry the exact position of the offending node.
type decoder struct {
	file string
}

func (d *decoder) errf(n *yaml.Node, format string, args ...any) error {
	return nodeErr(d.file, n, format, args...)
}

// deref follows aliases so anchors (&x / *x) work everywhere.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// field handles the value of one mapping key.
type field func(key, val *yaml.Node) error

// mapping dispatches the keys of a mapping node to fields in document
// order. A null node (a section written with no body) is an empty mapping.
// Unknown and duplicate keys are errors.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]field) error {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return d.errf(n, "%s: want a mapping, got %s", path, describe(n))
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return d.errf(k, "%s: keys must be plain strings", path)
		}
		if prev, dup := seen[k.Value]; dup {
			return d.errf(k, "%s: duplicate key %q (first at line %d)", path, k.Value, prev.Line)
		}
		seen[k.Value] = k
		f, ok := fields[k.Value]
		if !ok {
			return d.errf(k, "%s", unknownKey(k.Value, path, fields))
		}
		if err := f(k, deref(v)); err != nil {
			return err
		}
	}
	return nil
}

func unknownKey(key, path string, fields map[string]field) string {
	where := ""
	if path != "" {
		where = " in " + path
	}
	if key == "<<" {
		return fmt.Sprintf("unknown key %q%s (YAML merge keys are not supported)", key, where)
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	if s := suggest(key, names); s != "" {
		return fmt.Sprintf("unknown key %q%s (did you mean %q?)", key, where, s)
	}
	return fmt.Sprintf("unknown key %q%s (valid: %s)", key, where, strings.Join(names, ", "))
}

// describe names what a node is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "an unsupported node"
}

// sequence returns the (alias-resolved) items of a list node.
func (d *decoder) sequence(n *yaml.Node, path string) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, d.errf(n, "%s: want a list, got %s", path, describe(n))
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		items[i] = deref(c)
	}
	return items, nil
}

func (d *decoder) scalar(n *yaml.Node, path, want string) error {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return d.errf(n, "%s: want %s, got %s", path, want, describe(n))
	}
	return nil
}

// str accepts any non-null scalar, so that `user: 1234` is the string
// "1234" rather than a type error.
func (d *decoder) str(n *yaml.Node, path string) (string, error) {
	if err := d.scalar(n, path, "a string"); err != nil {
		return "", err
	}
	return n.Value, nil
}

func (d *decoder) int(n *yaml.Node, path string, lo, hi int) (int, error) {
	if err := d.scalar(n, path, "an integer"); err != nil {
		return 0, err
	}
	if n.ShortTag() != "!!int" {
		return 0, d.errf(n, "%s: want an integer, got %q", path, n.Value)
	}
	v, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil {
		return 0, d.errf(n, "%s: invalid integer %q", path, n.Value)
	}
	if v < int64(lo) || v > int64(hi) {
		return 0, d.errf(n, "%s: %d out of range %s", path, v, rangeText(lo, hi))
	}
	return int(v), nil
}

func rangeText(lo, hi int) string {
	if hi == math.MaxInt {
		return fmt.Sprintf("(must be at least %d)", lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

func (d *decoder) bool(n *yaml.Node, path string) (bool, error) {
	if err := d.scalar(n, path, "true or false"); err != nil {
		return false, err
	}
	if n.ShortTag() != "!!bool" {
		return false, d.errf(n, "%s: want true or false, got %q", path, n.Value)
	}
	return strings.EqualFold(n.Value, "true"), nil
}

// duration parses Go duration syntax. A bare number is rejected: "5" could
// mean seconds (Kamailio) or milliseconds (timers), so the unit is required.
func (d *decoder) duration(n *yaml.Node, path string, min time.Duration) (time.Duration, error) {
	if err := d.scalar(n, path, "a duration"); err != nil {
		return 0, err
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, d.errf(n, "%s: invalid duration %q (want a number with a unit, e.g. 500ms, 4s, 3m)", path, n.Value)
	}
	if v < min {
		if min == 0 {
			return 0, d.errf(n, "%s: duration %s must not be negative", path, n.Value)
		}
		return 0, d.errf(n, "%s: duration %s must be at least %s", path, n.Value, min)
	}
	return v, nil
}

// size parses a byte size: a plain integer, or a number with one of the
// units B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000).
func (d *decoder) size(n *yaml.Node, path string, lo, hi int) (int, error) {
	if err := d.scalar(n, path, "a size"); err != nil {
		return 0, err
	}
	v, ok := parseSize(n.Value)
	if !ok {
		return 0, d.errf(n, "%s: invalid size %q (want bytes or a number with B, KiB, MiB, GiB, KB, MB, GB)", path, n.Value)
	}
	if v < int64(lo) || v > int64(hi) {
		return 0, d.errf(n, "%s: size %s out of range %s bytes", path, n.Value, rangeText(lo, hi))
	}
	return int(v), nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "KiB" is not taken for "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

func parseSize(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	if s == "" || strings.ContainsAny(s, "+-") {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > math.MaxInt64/mult {
		return 0, false
	}
	return v * mult, true
}

// enum accepts one of choices, case-insensitively, returning it lower-case.
func (d *decoder) enum(n *yaml.Node, path string, choices ...string) (string, error) {
	s, err := d.str(n, path)
	if err != nil {
		return "", err
	}
	l := strings.ToLower(s)
	if !slices.Contains(choices, l) {
		return "", d.errf(n, "%s: invalid value %q (want %s)", path, s, strings.Join(choices, ", "))
	}
	return l, nil
}
