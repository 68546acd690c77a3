package lookup

import (
	"fmt"
	"net/url"
	"strings"
)

// field selects the Request value a placeholder stands for.
type field int

const (
	fieldLiteral field = iota
	fieldMethod
	fieldRURI
	fieldUser
	fieldHost
	fieldFrom
	fieldTo
	fieldCallID
	fieldSource
)

var placeholders = map[string]field{
	"method": fieldMethod,
	"ruri":   fieldRURI,
	"user":   fieldUser,
	"host":   fieldHost,
	"from":   fieldFrom,
	"to":     fieldTo,
	"callid": fieldCallID,
	"source": fieldSource,
}

// segment is either literal text or a placeholder.
type segment struct {
	f   field
	lit string
}

// urlTemplate is a URL template compiled once in New, so the pool
// goroutines only concatenate strings per lookup.
type urlTemplate struct {
	raw  string
	segs []segment
	size int // length of the literal parts, to size the builder
}

// parseTemplate compiles a URL template and checks that it yields an
// absolute http or https URL. Unknown or unterminated placeholders are
// errors: a typo like {usr} would otherwise send a literal "{usr}" to the
// service on every call.
func parseTemplate(tmpl string) (urlTemplate, error) {
	t := urlTemplate{raw: tmpl}
	rest := tmpl
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		lit := rest
		if open >= 0 {
			lit = rest[:open]
		}
		if strings.IndexByte(lit, '}') >= 0 {
			return urlTemplate{}, fmt.Errorf("unmatched '}' in URL template %q", tmpl)
		}
		if open < 0 {
			t.addLiteral(rest)
			break
		}
		t.addLiteral(rest[:open])
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return urlTemplate{}, fmt.Errorf("unterminated placeholder in URL template %q", tmpl)
		}
		name := rest[open+1 : open+end]
		f, ok := placeholders[strings.ToLower(name)]
		if !ok {
			return urlTemplate{}, fmt.Errorf("unknown placeholder {%s} in URL template %q (want one of {method} {ruri} {user} {host} {from} {to} {callid} {source})", name, tmpl)
		}
		t.segs = append(t.segs, segment{f: f})
		rest = rest[open+end+1:]
	}

	// Validate with a representative expansion: placeholders become a
	// harmless token, so the check covers what will really be sent.
	sample := t.expand(Request{Method: "x", RURI: "x", User: "x", Host: "x", From: "x", To: "x", CallID: "x", Source: "x"})
	u, err := url.Parse(sample)
	if err != nil {
		return urlTemplate{}, fmt.Errorf("URL template %q: %w", tmpl, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return urlTemplate{}, fmt.Errorf("URL template %q: scheme must be http or https", tmpl)
	}
	if u.Host == "" {
		return urlTemplate{}, fmt.Errorf("URL template %q: missing host", tmpl)
	}
	if u.User != nil {
		// Credentials in the URL would end up in every debug log line;
		// a lookup service on the call path is reached over a trusted
		// network or by address, not with basic auth in the URL.
		return urlTemplate{}, fmt.Errorf("URL template %q: user info in the URL is not supported", tmpl)
	}
	return t, nil
}

func (t *urlTemplate) addLiteral(s string) {
	if s == "" {
		return
	}
	t.segs = append(t.segs, segment{f: fieldLiteral, lit: s})
	t.size += len(s)
}

// expand returns the URL for req, each placeholder query-escaped.
func (t *urlTemplate) expand(req Request) string {
	var b strings.Builder
	b.Grow(t.size + 64)
	for _, s := range t.segs {
		var v string
		switch s.f {
		case fieldLiteral:
			b.WriteString(s.lit)
			continue
		case fieldMethod:
			v = req.Method
		case fieldRURI:
			v = req.RURI
		case fieldUser:
			v = req.User
		case fieldHost:
			v = req.Host
		case fieldFrom:
			v = req.From
		case fieldTo:
			v = req.To
		case fieldCallID:
			v = req.CallID
		case fieldSource:
			v = req.Source
		}
		b.WriteString(url.QueryEscape(v))
	}
	return b.String()
}

// String returns the template as configured.
func (t *urlTemplate) String() string { return t.raw }
