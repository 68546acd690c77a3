package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file parses the suspend/queue/resume pipeline: queues, suspend
// rules, HTTP route lookups and the replies they send.

// named decodes a mapping of name -> body (queues, lookups), rejecting
// empty and duplicate names, and calls body for each entry in document
// order.
func (p *parser) named(v *yaml.Node, section, noun string, keys map[string]*yaml.Node,
	body func(name string, key, v *yaml.Node) error) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return p.errf(v, "%s: want a mapping of %s name to %s, got %s", section, noun, noun, describe(v))
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, b := v.Content[i], deref(v.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			return p.errf(k, "%s: %s names must be non-empty strings", section, noun)
		}
		if prev, dup := keys[k.Value]; dup {
			return p.errf(k, "%s: duplicate %s %q (first at line %d)", section, noun, k.Value, prev.Line)
		}
		keys[k.Value] = k
		if err := body(k.Value, k, b); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) queues(v *yaml.Node) error {
	p.cfg.Queues = map[string]*Queue{}
	return p.named(v, "queues", "queue", p.queueNodes, func(name string, key, v *yaml.Node) error {
		q, err := p.queue(name, key, v)
		if err == nil {
			p.cfg.Queues[name] = q
		}
		return err
	})
}

func (p *parser) queue(name string, key, v *yaml.Node) (*Queue, error) {
	path := "queues." + name
	q := defaultQueue(name)
	var delayNode, maxWaitNode *yaml.Node
	err := p.mapping(v, path, map[string]field{
		"delay": func(k, v *yaml.Node) (err error) {
			delayNode = v
			q.Delay, err = p.duration(v, path+".delay", 0)
			return err
		},
		"max_wait": func(k, v *yaml.Node) (err error) {
			maxWaitNode = v
			q.MaxWait, err = p.duration(v, path+".max_wait", time.Millisecond)
			return err
		},
		"consumers": intField(&p.decoder, &q.Consumers, path+".consumers", 1, 1024),
		"capacity":  intField(&p.decoder, &q.Capacity, path+".capacity", 1, 1<<24),
		"on_full": func(_, v *yaml.Node) error {
			return p.reply(&q.OnFull, v, path+".on_full")
		},
	})
	if err != nil {
		return nil, err
	}
	if delayNode == nil {
		return nil, p.errf(key, "%s: delay is required (how long each suspended request is held; 0s releases it as soon as a consumer is free)", path)
	}
	if q.Delay >= q.MaxWait {
		n := delayNode
		if maxWaitNode != nil {
			n = later(delayNode, maxWaitNode)
		}
		p.warnf(n, "%s: delay %s is not less than max_wait %s: every request suspended in this queue will be answered 408 instead of being released",
			path, q.Delay, q.MaxWait)
	}
	return q, nil
}

func (p *parser) lookups(v *yaml.Node) error {
	p.cfg.Lookups = map[string]*Lookup{}
	return p.named(v, "lookups", "lookup", p.lookupNodes, func(name string, key, v *yaml.Node) error {
		l, err := p.lookup(name, key, v)
		if err == nil {
			p.cfg.Lookups[name] = l
		}
		return err
	})
}

func (p *parser) lookup(name string, key, v *yaml.Node) (*Lookup, error) {
	path := "lookups." + name
	l := defaultLookup(name)
	var urlNode, timeoutNode, maxWaitNode *yaml.Node
	err := p.mapping(v, path, map[string]field{
		"url": func(_, v *yaml.Node) error {
			urlNode = v
			s, err := p.nonEmpty(v, path+".url")
			if err != nil {
				return err
			}
			if err := checkLookupURL(s); err != nil {
				return p.errf(v, "%s.url: %v", path, err)
			}
			l.URL = s
			return nil
		},
		"timeout": func(_, v *yaml.Node) (err error) {
			timeoutNode = v
			l.Timeout, err = p.duration(v, path+".timeout", time.Millisecond)
			return err
		},
		"max_wait": func(_, v *yaml.Node) (err error) {
			maxWaitNode = v
			l.MaxWait, err = p.duration(v, path+".max_wait", time.Millisecond)
			return err
		},
		"concurrency": intField(&p.decoder, &l.Concurrency, path+".concurrency", 1, 4096),
		"queue_size":  intField(&p.decoder, &l.QueueSize, path+".queue_size", 1, 1<<20),
		"on_timeout": func(_, v *yaml.Node) error {
			return p.reply(&l.OnTimeout, v, path+".on_timeout")
		},
		"on_error": func(_, v *yaml.Node) error {
			return p.reply(&l.OnError, v, path+".on_error")
		},
	})
	if err != nil {
		return nil, err
	}
	if urlNode == nil {
		return nil, p.errf(key, "%s: url is required", path)
	}
	if l.Timeout >= l.MaxWait {
		n := key
		switch {
		case timeoutNode != nil && maxWaitNode != nil:
			n = later(timeoutNode, maxWaitNode)
		case timeoutNode != nil:
			n = timeoutNode
		case maxWaitNode != nil:
			n = maxWaitNode
		}
		p.warnf(n, "%s: timeout %s is not less than max_wait %s: the suspended transaction gives up before the HTTP request times out",
			path, l.Timeout, l.MaxWait)
	}
	return l, nil
}

// checkLookupURL accepts an absolute http or https URL whose
// {placeholders} are known and appear only in the path and query, so
// that a request can never choose which server is asked.
func checkLookupURL(s string) error {
	if !strings.Contains(s, "://") {
		return fmt.Errorf("invalid URL %q: missing scheme (want http:// or https://)", s)
	}
	a, err := expandPlaceholders(s, "a")
	if err != nil {
		return err
	}
	b, _ := expandPlaceholders(s, "b")
	ua, err := url.Parse(a)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid URL %q: %v", s, err)
	}
	switch strings.ToLower(ua.Scheme) {
	case "http", "https":
	default:
		return fmt.Errorf("unsupported scheme %q in %q (want http or https)", ua.Scheme, s)
	}
	if ua.Host == "" || ua.Hostname() == "" {
		return fmt.Errorf("invalid URL %q: missing host", s)
	}
	if ua.Fragment != "" || strings.Contains(a, "#") {
		return fmt.Errorf("invalid URL %q: a fragment (#...) is never sent to the server", s)
	}
	if ua.User != nil {
		// Credentials would end up in every log line that shows the URL.
		return fmt.Errorf("invalid URL %q: user info (user:password@) is not supported", s)
	}
	ub, err := url.Parse(b)
	if err != nil || ub.Scheme != ua.Scheme || ub.Host != ua.Host {
		return fmt.Errorf("invalid URL %q: placeholders are allowed only in the path and query", s)
	}
	return nil
}

// expandPlaceholders replaces every {name} in s with with, checking that
// each name is one of LookupPlaceholders.
func expandPlaceholders(s, with string) (string, error) {
	var b strings.Builder
	for {
		open := strings.IndexAny(s, "{}")
		if open < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if s[open] == '}' {
			return "", fmt.Errorf("unmatched '}' in %q", s)
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated placeholder %q (want {name})", s[open:])
		}
		name := s[open+1 : open+end]
		if !slices.Contains(LookupPlaceholders, strings.ToLower(name)) {
			return "", fmt.Errorf("unknown placeholder {%s} (valid: {%s})", name, strings.Join(LookupPlaceholders, "}, {"))
		}
		b.WriteString(s[:open])
		b.WriteString(with)
		s = s[open+end+1:]
	}
}

// reply decodes {code, reason, retry_after} over the defaults already in
// r. A code changed without a reason gets the standard reason phrase.
func (p *parser) reply(r *Reply, v *yaml.Node, path string) error {
	defCode := r.Code
	var codeNode, reasonNode *yaml.Node
	err := p.mapping(v, path, map[string]field{
		"code": func(_, v *yaml.Node) (err error) {
			codeNode = v
			r.Code, err = p.int(v, path+".code", 300, 699)
			return err
		},
		"reason": func(_, v *yaml.Node) error {
			reasonNode = v
			s, err := p.nonEmpty(v, path+".reason")
			if err != nil {
				return err
			}
			if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
				return p.errf(v, "%s.reason: control characters are not allowed in a reason phrase", path)
			}
			r.Reason = s
			return nil
		},
		"retry_after": func(_, v *yaml.Node) error {
			d, err := p.duration(v, path+".retry_after", 0)
			if err != nil {
				return err
			}
			if d%time.Second != 0 {
				// Retry-After carries delta-seconds (RFC 3261 §20.33).
				return p.errf(v, "%s.retry_after: %s is not a whole number of seconds", path, v.Value)
			}
			r.RetryAfter = d
			return nil
		},
	})
	if err != nil {
		return err
	}
	if reasonNode == nil && r.Code != defCode {
		phrase, ok := reasonPhrases[r.Code]
		if !ok {
			return p.errf(codeNode, "%s: reason is required for code %d (it has no standard reason phrase)", path, r.Code)
		}
		r.Reason = phrase
	}
	return nil
}

// reasonPhrases are the standard reason phrases of the final responses a
// local reply may use (RFC 3261 §21 and later registrations).
var reasonPhrases = map[int]string{
	300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
	305: "Use Proxy", 380: "Alternative Service",
	400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
	404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
	407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
	413: "Request Entity Too Large", 414: "Request-URI Too Long",
	415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
	421: "Extension Required", 423: "Interval Too Brief",
	480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
	482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
	485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
	488: "Not Acceptable Here", 491: "Request Pending", 493: "Undecipherable",
	500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
	513: "Message Too Large",
	600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
	606: "Not Acceptable",
}

func (p *parser) suspend(v *yaml.Node) error {
	items, err := p.sequence(v, "suspend")
	if err != nil {
		return err
	}
	names := map[string]int{}
	for i, it := range items {
		path := fmt.Sprintf("suspend[%d]", i)
		var (
			r         SuspendRule
			queueNode *yaml.Node
		)
		err := p.mapping(it, path, map[string]field{
			"name": func(_, v *yaml.Node) (err error) {
				r.Name, err = p.nonEmpty(v, path+".name")
				if err == nil {
					if j, dup := names[r.Name]; dup {
						return p.errf(v, "%s.name: duplicate rule name %q (also suspend[%d])", path, r.Name, j)
					}
					names[r.Name] = i
				}
				return err
			},
			"match": func(_, v *yaml.Node) error {
				return p.suspendMatch(&r.Match, v, path+".match")
			},
			"queue": func(_, v *yaml.Node) (err error) {
				queueNode = v
				r.Queue, err = p.nonEmpty(v, path+".queue")
				return err
			},
		})
		if err != nil {
			return err
		}
		if r.Name == "" {
			return p.errf(it, "%s: name is required", path)
		}
		if queueNode == nil {
			return p.errf(it, "%s: queue is required (the queue that holds matching requests)", path)
		}
		p.cfg.Suspend = append(p.cfg.Suspend, r)
		p.suspendNodes = append(p.suspendNodes, queueNode)
	}
	return nil
}

// unsuspendable rejects the methods the proxy never holds.
func unsuspendable(m string) error {
	switch m {
	case "ACK":
		return errors.New("ACK cannot be suspended (no transaction holds it: it is absorbed, or forwarded statelessly)")
	case "CANCEL":
		return errors.New("CANCEL cannot be suspended (the proxy answers it at once and cancels the request it refers to)")
	}
	return nil
}

func (p *parser) suspendMatch(m *SuspendMatch, v *yaml.Node, path string) error {
	return p.mapping(v, path, map[string]field{
		"methods": func(_, v *yaml.Node) (err error) {
			m.Methods, err = p.methods(v, path+".methods", unsuspendable)
			return err
		},
		"in_dialog": func(_, v *yaml.Node) error {
			b, err := p.bool(v, path+".in_dialog")
			if err != nil {
				return err
			}
			m.InDialog = &b
			return nil
		},
		"uri_regex": func(_, v *yaml.Node) (err error) {
			m.URIRegex, err = p.regex(v, path+".uri_regex")
			return err
		},
		"header": func(k, v *yaml.Node) error {
			hp := path + ".header"
			var nameNode, reNode *yaml.Node
			err := p.mapping(v, hp, map[string]field{
				"name": func(_, v *yaml.Node) error {
					nameNode = v
					s, err := p.nonEmpty(v, hp+".name")
					if err != nil {
						return err
					}
					if !validToken(s) {
						return p.errf(v, "%s.name: invalid header name %q", hp, s)
					}
					m.HeaderName = s
					return nil
				},
				"regex": func(_, v *yaml.Node) (err error) {
					reNode = v
					m.HeaderRegex, err = p.regex(v, hp+".regex")
					return err
				},
			})
			if err != nil {
				return err
			}
			if nameNode == nil {
				return p.errf(v, "%s: name is required", hp)
			}
			if reNode == nil {
				return p.errf(v, "%s: regex is required (use '^' to require only that the header exists)", hp)
			}
			return nil
		},
	})
}

// validateSuspend checks the cross references of the pipeline and notes
// what is defined but never used.
func (p *parser) validateSuspend() error {
	c := p.cfg
	usedQ := map[string]bool{}
	for i, r := range c.Suspend {
		if _, ok := c.Queues[r.Queue]; !ok {
			return p.errf(p.suspendNodes[i], "suspend[%d].queue: unknown queue %q%s", i, r.Queue, known(c.Queues, "queues"))
		}
		usedQ[r.Queue] = true
	}
	for name := range c.Queues {
		if !usedQ[name] {
			p.warnf(p.queueNodes[name], "queues.%s: not used by any suspend rule", name)
		}
	}
	usedL := map[string]bool{}
	for _, r := range c.Routes {
		usedL[r.Lookup] = true
	}
	for name := range c.Lookups {
		if !usedL[name] {
			p.warnf(p.lookupNodes[name], "lookups.%s: not used by any route", name)
		}
	}
	return nil
}

// known lists the defined names for an "unknown X" error.
func known[V any](m map[string]V, section string) string {
	if len(m) == 0 {
		return fmt.Sprintf(" (no %s are defined)", section)
	}
	return " (defined: " + strings.Join(sortedKeys(m), ", ") + ")"
}
