package route

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/config"
)

// suspendRule is a config.SuspendRule compiled for matching.
type suspendRule struct {
	name, queue string
	methods     []string
	inDialog    int8 // 0: any; 1: To must have a tag; -1: To must not
	re          *regexp.Regexp
	hdrName     string // as configured
	hdrAlt      string // the other form (compact or full), or ""
	hdrRe       *regexp.Regexp
}

func newSuspendRules(cfg *config.Config) []suspendRule {
	if len(cfg.Suspend) == 0 {
		return nil
	}
	rules := make([]suspendRule, 0, len(cfg.Suspend))
	for _, cr := range cfg.Suspend {
		if _, ok := cfg.Queues[cr.Queue]; !ok {
			panic(fmt.Sprintf("route.New: suspend rule %q uses unknown queue %q", cr.Name, cr.Queue))
		}
		m := cr.Match
		sr := suspendRule{
			name: cr.Name, queue: cr.Queue, methods: m.Methods, re: m.URIRegex,
			hdrName: m.HeaderName, hdrAlt: compactAlias(m.HeaderName), hdrRe: m.HeaderRegex,
		}
		if m.InDialog != nil {
			sr.inDialog = -1
			if *m.InDialog {
				sr.inDialog = 1
			}
		}
		rules = append(rules, sr)
	}
	return rules
}

// SuspendQueue returns the queue of the first suspend rule, in config
// order, that matches req, or "" when none does (the request is routed
// at once). See SuspendRule.
func (r *Router) SuspendQueue(req *sip.Request) string {
	_, q := r.SuspendRule(req)
	return q
}

// SuspendRule returns the name and queue of the first suspend rule, in
// config order, that matches req, or "", "" when none does.
//
// ACK and CANCEL never match: the proxy absorbs, forwards or answers them
// at once (config rejects them in suspend methods; this also covers rules
// without methods). Methods compare case-sensitively, as in Match.
// in_dialog tests for a tag on To (a nil To has none). uri_regex runs on
// the full Request-URI, built at most once per call and only when a rule
// with a regex is reached. The header condition reads the first header of
// that name, case-insensitively and in compact or full form; a missing
// header does not match.
//
// With no rules it is one length check. Otherwise it allocates only to
// build the Request-URI string or the value of a typed header.
func (r *Router) SuspendRule(req *sip.Request) (rule, queue string) {
	if len(r.suspend) == 0 || req == nil {
		return "", ""
	}
	method := string(req.Method)
	if method == "ACK" || method == "CANCEL" {
		return "", ""
	}
	var (
		inDialog, dialogDone bool
		full                 string
		fullDone             bool
	)
	for i := range r.suspend {
		sr := &r.suspend[i]
		if len(sr.methods) > 0 && !slices.Contains(sr.methods, method) {
			continue
		}
		if sr.inDialog != 0 {
			if !dialogDone {
				to := req.To()
				inDialog = to != nil && to.Params.Has("tag")
				dialogDone = true
			}
			if inDialog != (sr.inDialog > 0) {
				continue
			}
		}
		if sr.re != nil {
			if !fullDone {
				full = req.Recipient.String()
				fullDone = true
			}
			if !sr.re.MatchString(full) {
				continue
			}
		}
		if sr.hdrRe != nil {
			h := firstHeader(req, sr.hdrName, sr.hdrAlt)
			if h == nil || !sr.hdrRe.MatchString(h.Value()) {
				continue
			}
		}
		return sr.name, sr.queue
	}
	return "", ""
}

// firstHeader finds the first header named name or alt without sipgo's
// GetHeader, which lower-cases (allocates) every header name it compares.
func firstHeader(req *sip.Request, name, alt string) sip.Header {
	for _, h := range req.Headers() {
		n := h.Name()
		if strings.EqualFold(n, name) || alt != "" && strings.EqualFold(n, alt) {
			return h
		}
	}
	return nil
}

// compactForms maps the compact header names of RFC 3261 §7.3.3 and later
// RFCs (IANA "SIP Parameters" registry) to their full names.
var compactForms = [][2]string{
	{"a", "Accept-Contact"},
	{"b", "Referred-By"},
	{"c", "Content-Type"},
	{"d", "Request-Disposition"},
	{"e", "Content-Encoding"},
	{"f", "From"},
	{"i", "Call-ID"},
	{"j", "Reject-Contact"},
	{"k", "Supported"},
	{"l", "Content-Length"},
	{"m", "Contact"},
	{"n", "Identity-Info"},
	{"o", "Event"},
	{"r", "Refer-To"},
	{"s", "Subject"},
	{"t", "To"},
	{"u", "Allow-Events"},
	{"v", "Via"},
	{"x", "Session-Expires"},
	{"y", "Identity"},
}

// compactAlias returns the other form of a header name: the full name for
// a compact one and vice versa, or "" if it has none.
func compactAlias(name string) string {
	for _, f := range compactForms {
		if strings.EqualFold(name, f[0]) {
			return f[1]
		}
		if strings.EqualFold(name, f[1]) {
			return f[0]
		}
	}
	return ""
}
