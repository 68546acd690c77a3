package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// resolveTimeout bounds each host name lookup at load time.
const resolveTimeout = 5 * time.Second

// resolver is the subset of *net.Resolver used for hop host names; tests
// substitute a fake so they need no DNS.
type resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Parse parses, defaults and validates a configuration. name is used as
// the file name in error positions. Host names in hops are resolved with
// net.DefaultResolver (5 s per name). Every returned error is an *Error.
// Non-fatal findings (a queue delay that is not less than its max_wait, a
// queue or lookup nothing uses) do not fail the parse: they are returned
// in Config.Warnings, for the caller to log.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, data, net.DefaultResolver)
}

// parser carries state across the passes of one Parse: decoding, then
// cross-validation, then name resolution (last, so a typo is reported
// without first waiting for DNS).
type parser struct {
	decoder
	res  resolver
	root *yaml.Node
	cfg  *Config

	listenSet  bool
	routesKey  *yaml.Node
	setNodes   map[string]*yaml.Node   // destination set name -> key node
	hopNodes   map[string][]*yaml.Node // destination set name -> hop uri nodes
	fromURISet map[string]bool
	routeNodes []routeNodes

	queueNodes   map[string]*yaml.Node // queue name -> key node
	lookupNodes  map[string]*yaml.Node // lookup name -> key node
	suspendNodes []*yaml.Node          // suspend[i].queue value nodes
	warnings     []*Error
}

type routeNodes struct {
	item, to, lookup, match *yaml.Node
}

func parse(name string, data []byte, res resolver) (*Config, error) {
	p := &parser{
		decoder:     decoder{file: name},
		res:         res,
		cfg:         defaults(),
		setNodes:    map[string]*yaml.Node{},
		hopNodes:    map[string][]*yaml.Node{},
		fromURISet:  map[string]bool{},
		queueNodes:  map[string]*yaml.Node{},
		lookupNodes: map[string]*yaml.Node{},
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, p.errf(&extra, "only one YAML document is allowed")
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, data, err)
	}

	// An empty file is an empty mapping; validation then reports what
	// is missing (the default route) rather than a bare "empty file".
	p.root = &yaml.Node{Kind: yaml.MappingNode, Line: 1, Column: 1}
	if len(doc.Content) > 0 {
		p.root = deref(doc.Content[0])
	}
	if err := p.top(p.root); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	if err := p.resolveHops(); err != nil {
		return nil, err
	}
	// Warnings in document order, whichever pass found them.
	slices.SortStableFunc(p.warnings, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	for _, w := range p.warnings {
		p.cfg.Warnings = append(p.cfg.Warnings, w.Error())
	}
	return p.cfg, nil
}

// warnf records a non-fatal finding positioned at n.
func (p *parser) warnf(n *yaml.Node, format string, args ...any) {
	p.warnings = append(p.warnings, nodeErr(p.file, n, format, args...))
}

func (p *parser) top(n *yaml.Node) error {
	c := p.cfg
	err := p.mapping(n, "", map[string]field{
		"listen": func(k, v *yaml.Node) error {
			p.listenSet = true
			return p.listen(v)
		},
		"udp": func(k, v *yaml.Node) error {
			return p.mapping(v, "udp", map[string]field{
				"sockets": intField(&p.decoder, &c.UDP.Sockets, "udp.sockets", 1, 1024),
				"recv_buffer": sizeField(&p.decoder, &c.UDP.RecvBuffer, "udp.recv_buffer",
					4<<10, 1<<30),
				"send_buffer": sizeField(&p.decoder, &c.UDP.SendBuffer, "udp.send_buffer",
					4<<10, 1<<30),
				"max_datagram": sizeField(&p.decoder, &c.UDP.MaxDatagram, "udp.max_datagram",
					1500, 65535),
			})
		},
		"tcp": func(k, v *yaml.Node) error {
			return p.mapping(v, "tcp", map[string]field{
				"idle_timeout":    durField(&p.decoder, &c.TCP.IdleTimeout, "tcp.idle_timeout", time.Second),
				"connect_timeout": durField(&p.decoder, &c.TCP.ConnectTimeout, "tcp.connect_timeout", time.Millisecond),
				"max_message_size": sizeField(&p.decoder, &c.TCP.MaxMessageSize, "tcp.max_message_size",
					1500, 16<<20),
			})
		},
		"workers": func(k, v *yaml.Node) error {
			return p.mapping(v, "workers", map[string]field{
				"count":          intField(&p.decoder, &c.Workers.Count, "workers.count", 0, 4096),
				"inbox":          intField(&p.decoder, &c.Workers.Inbox, "workers.inbox", 1, 1<<24),
				"lock_os_thread": boolField(&p.decoder, &c.Workers.LockOSThread, "workers.lock_os_thread"),
				"pin_cpus": func(k, v *yaml.Node) error {
					if err := boolField(&p.decoder, &c.Workers.PinCPUs, "workers.pin_cpus")(k, v); err != nil {
						return err
					}
					if c.Workers.PinCPUs && !c.Workers.LockOSThread {
						// CPU affinity is per OS thread; without the lock the
						// goroutine migrates away from the pinned thread.
						return p.errf(v, "workers.pin_cpus: requires workers.lock_os_thread: true")
					}
					return nil
				},
			})
		},
		"timers": func(k, v *yaml.Node) error {
			if err := p.mapping(v, "timers", map[string]field{
				"t1":      durField(&p.decoder, &c.Timers.T1, "timers.t1", time.Millisecond),
				"t2":      durField(&p.decoder, &c.Timers.T2, "timers.t2", time.Millisecond),
				"t4":      durField(&p.decoder, &c.Timers.T4, "timers.t4", time.Millisecond),
				"timer_c": durField(&p.decoder, &c.Timers.TimerC, "timers.timer_c", time.Millisecond),
			}); err != nil {
				return err
			}
			if c.Timers.T2 < c.Timers.T1 {
				return p.errf(k, "timers: t2 (%s) must not be less than t1 (%s)", c.Timers.T2, c.Timers.T1)
			}
			return nil
		},
		"proxy": func(k, v *yaml.Node) error {
			return p.mapping(v, "proxy", map[string]field{
				"record_route": boolField(&p.decoder, &c.Proxy.RecordRoute, "proxy.record_route"),
				"max_forwards": intField(&p.decoder, &c.Proxy.MaxForwards, "proxy.max_forwards", 1, 255),
				// Retry-After carries whole seconds (RFC 3261 §20.33).
				"overload_retry_after": durField(&p.decoder, &c.Proxy.OverloadRetryAfter,
					"proxy.overload_retry_after", time.Second),
				"udp_mtu_threshold": sizeField(&p.decoder, &c.Proxy.UDPMTUThreshold,
					"proxy.udp_mtu_threshold", 200, 65535),
			})
		},
		"shutdown": func(k, v *yaml.Node) error {
			return p.mapping(v, "shutdown", map[string]field{
				"grace":  durField(&p.decoder, &c.Shutdown.Grace, "shutdown.grace", 0),
				"queued": enumField(&p.decoder, &c.Shutdown.Queued, "shutdown.queued", ShutdownRelease, ShutdownReject),
			})
		},
		"log": func(k, v *yaml.Node) error {
			return p.mapping(v, "log", map[string]field{
				"level":  enumField(&p.decoder, &c.Log.Level, "log.level", "debug", "info", "warn", "error"),
				"format": enumField(&p.decoder, &c.Log.Format, "log.format", "text", "json"),
			})
		},
		"destinations": func(k, v *yaml.Node) error { return p.destinations(v) },
		"routes": func(k, v *yaml.Node) error {
			p.routesKey = k
			return p.routes(v)
		},
		"ebpf": func(k, v *yaml.Node) error {
			return p.mapping(v, "ebpf", map[string]field{
				"mode":       enumField(&p.decoder, &c.EBPF.Mode, "ebpf.mode", EBPFAuto, EBPFOn, EBPFOff),
				"interfaces": func(_, v *yaml.Node) error { return p.interfaces(v) },
				"snaplen":    intField(&p.decoder, &c.EBPF.Snaplen, "ebpf.snaplen", 256, 4096),
				"legacy_tc":  boolField(&p.decoder, &c.EBPF.LegacyTC, "ebpf.legacy_tc"),
				"ring_buffer": sizeField(&p.decoder, &c.EBPF.RingBuffer, "ebpf.ring_buffer",
					64<<10, 1<<30),
				"match_ttl": durField(&p.decoder, &c.EBPF.MatchTTL, "ebpf.match_ttl", 10*time.Millisecond),
			})
		},
		"tracing": func(k, v *yaml.Node) error { return p.tracing(v) },
		"metrics": func(k, v *yaml.Node) error {
			return p.mapping(v, "metrics", map[string]field{
				"listen": func(_, v *yaml.Node) error { return p.metricsListen(v) },
			})
		},
		"queues":  func(k, v *yaml.Node) error { return p.queues(v) },
		"suspend": func(k, v *yaml.Node) error { return p.suspend(v) },
		"lookups": func(k, v *yaml.Node) error { return p.lookups(v) },
	})
	if err != nil {
		return err
	}
	if !p.listenSet {
		l, err := newListen(netip.MustParseAddrPort(defaultListen), nil, "")
		if err != nil {
			return fmt.Errorf("default listen: %w", err) // unreachable: constant input
		}
		c.Listen = []Listen{l}
	}
	return nil
}

func intField(d *decoder, dst *int, path string, lo, hi int) field {
	return func(_, v *yaml.Node) (err error) {
		*dst, err = d.int(v, path, lo, hi)
		return err
	}
}

func sizeField(d *decoder, dst *int, path string, lo, hi int) field {
	return func(_, v *yaml.Node) (err error) {
		*dst, err = d.size(v, path, lo, hi)
		return err
	}
}

func durField(d *decoder, dst *time.Duration, path string, min time.Duration) field {
	return func(_, v *yaml.Node) (err error) {
		*dst, err = d.duration(v, path, min)
		return err
	}
}

func boolField(d *decoder, dst *bool, path string) field {
	return func(_, v *yaml.Node) (err error) {
		*dst, err = d.bool(v, path)
		return err
	}
}

func enumField(d *decoder, dst *string, path string, choices ...string) field {
	return func(_, v *yaml.Node) (err error) {
		*dst, err = d.enum(v, path, choices...)
		return err
	}
}

// interfaces decodes ebpf.interfaces: a list of interface names.
func (p *parser) interfaces(v *yaml.Node) error {
	items, err := p.sequence(v, "ebpf.interfaces")
	if err != nil {
		return err
	}
	p.cfg.EBPF.Interfaces = nil
	for i, it := range items {
		name, err := p.nonEmpty(it, fmt.Sprintf("ebpf.interfaces[%d]", i))
		if err != nil {
			return err
		}
		if len(name) > 15 || strings.ContainsAny(name, "/ \t") {
			return p.errf(it, "ebpf.interfaces[%d]: %q is not an interface name", i, name)
		}
		p.cfg.EBPF.Interfaces = append(p.cfg.EBPF.Interfaces, name)
	}
	return nil
}

func (p *parser) listen(v *yaml.Node) error {
	items, err := p.sequence(v, "listen")
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return p.errf(v, "listen: at least one address is required")
	}
	seen := map[string]int{}
	for i, it := range items {
		path := fmt.Sprintf("listen[%d]", i)
		var (
			addrNode, advNode *yaml.Node
			transports        []string
			addrStr, adv      string
		)
		err := p.mapping(it, path, map[string]field{
			"address": func(_, v *yaml.Node) (err error) {
				addrNode = v
				addrStr, err = p.str(v, path+".address")
				return err
			},
			"transports": func(_, v *yaml.Node) error {
				ts, err := p.sequence(v, path+".transports")
				if err != nil {
					return err
				}
				if len(ts) == 0 {
					return p.errf(v, "%s.transports: at least one transport is required", path)
				}
				for j, t := range ts {
					tp := fmt.Sprintf("%s.transports[%d]", path, j)
					s, err := p.enum(t, tp, TransportUDP, TransportTCP)
					if err != nil {
						return err
					}
					if slices.Contains(transports, s) {
						return p.errf(t, "%s: duplicate transport %q", tp, s)
					}
					transports = append(transports, s)
				}
				return nil
			},
			"advertise": func(_, v *yaml.Node) (err error) {
				advNode = v
				adv, err = p.str(v, path+".advertise")
				return err
			},
		})
		if err != nil {
			return err
		}
		if addrNode == nil {
			return p.errf(it, "%s: address is required", path)
		}
		ap, err := parseListenAddr(addrStr)
		if err != nil {
			return p.errf(addrNode, "%s.address: %v", path, err)
		}
		l, err := newListen(ap, transports, adv)
		if err != nil {
			n := advNode
			if n == nil {
				n = addrNode
			}
			return p.errf(n, "%s: %v", path, err)
		}
		for _, t := range l.Transports {
			key := t + ":" + ap.String()
			if j, dup := seen[key]; dup {
				return p.errf(addrNode, "%s.address: %s over %s already listed in listen[%d]", path, ap, t, j)
			}
			seen[key] = i
		}
		p.cfg.Listen = append(p.cfg.Listen, l)
	}
	return nil
}

// parseListenAddr requires an IP literal: binding must not depend on DNS.
func parseListenAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(strings.TrimSpace(s))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("invalid address %q (want IP:port, e.g. 127.0.0.1:5060 or [::1]:5060)", s)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("port 0 in %q: a fixed port is required", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// newListen fills in defaults for one listen entry. An unspecified bind
// address (0.0.0.0, ::) needs an explicit advertise: putting 0.0.0.0 in a
// Record-Route would break every in-dialog request.
func newListen(ap netip.AddrPort, transports []string, adv string) (Listen, error) {
	if len(transports) == 0 {
		transports = []string{TransportUDP, TransportTCP}
	}
	l := Listen{Address: ap, Transports: transports}
	if adv == "" {
		if ap.Addr().IsUnspecified() {
			return Listen{}, fmt.Errorf("advertise is required when listening on %s", ap.Addr())
		}
		l.Advertise, l.AdvertiseHost, l.AdvertisePort = ap.String(), ap.Addr().String(), int(ap.Port())
		return l, nil
	}
	host, port, err := splitAdvertise(adv, int(ap.Port()))
	if err != nil {
		return Listen{}, err
	}
	l.AdvertiseHost, l.AdvertisePort = host, port
	l.Advertise = net.JoinHostPort(host, strconv.Itoa(port))
	return l, nil
}

// splitAdvertise accepts "host:port", "[v6]:port" or a bare host (the
// listen port is then used).
func splitAdvertise(s string, defPort int) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare host name, IPv4, or bracketed IPv6.
		host, portStr = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), strconv.Itoa(defPort)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() {
			return "", 0, fmt.Errorf("advertise %q: an unspecified address cannot be advertised", s)
		}
	} else if !validHostname(host) {
		return "", 0, fmt.Errorf("advertise %q: invalid host %q", s, host)
	}
	port, err := parsePort(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("advertise %q: %w", s, err)
	}
	return host, port, nil
}

func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing port")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("invalid port %q", s)
		}
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %s out of range 1-65535", s)
	}
	return p, nil
}

// validHostname checks RFC 1123 host name syntax.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func (p *parser) destinations(v *yaml.Node) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return p.errf(v, "destinations: want a mapping of set name to set, got %s", describe(v))
	}
	p.cfg.Destinations = make(map[string]*DestinationSet, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, body := v.Content[i], deref(v.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			return p.errf(k, "destinations: set names must be non-empty strings")
		}
		name := k.Value
		if prev, dup := p.setNodes[name]; dup {
			return p.errf(k, "destinations: duplicate set %q (first at line %d)", name, prev.Line)
		}
		p.setNodes[name] = k
		s, err := p.set(name, k, body)
		if err != nil {
			return err
		}
		p.cfg.Destinations[name] = s
	}
	return nil
}

func (p *parser) set(name string, key, v *yaml.Node) (*DestinationSet, error) {
	path := "destinations." + name
	s := defaultSet(name)
	var hopsNode *yaml.Node
	err := p.mapping(v, path, map[string]field{
		"policy": enumField(&p.decoder, &s.Policy, path+".policy", PolicyOrdered, PolicyWeighted),
		"hops": func(_, v *yaml.Node) error {
			hopsNode = v
			return p.hops(s, v, path+".hops")
		},
		"failover_on": func(_, v *yaml.Node) error {
			items, err := p.sequence(v, path+".failover_on")
			if err != nil {
				return err
			}
			s.FailoverOn = s.FailoverOn[:0:0]
			for j, it := range items {
				code, err := p.int(it, fmt.Sprintf("%s.failover_on[%d]", path, j), 300, 699)
				if err != nil {
					return err
				}
				if !slices.Contains(s.FailoverOn, code) {
					s.FailoverOn = append(s.FailoverOn, code)
				}
			}
			return nil
		},
		"probe": func(_, v *yaml.Node) error {
			pp := path + ".probe"
			pr := &s.Probe
			return p.mapping(v, pp, map[string]field{
				"enabled":          boolField(&p.decoder, &pr.Enabled, pp+".enabled"),
				"interval":         durField(&p.decoder, &pr.Interval, pp+".interval", 100*time.Millisecond),
				"timeout":          durField(&p.decoder, &pr.Timeout, pp+".timeout", time.Millisecond),
				"failures_to_down": intField(&p.decoder, &pr.FailuresToDown, pp+".failures_to_down", 1, 1000),
				"successes_to_up":  intField(&p.decoder, &pr.SuccessesToUp, pp+".successes_to_up", 1, 1000),
				"from_uri": func(_, v *yaml.Node) error {
					u, err := p.str(v, pp+".from_uri")
					if err != nil {
						return err
					}
					if err := checkFromURI(u); err != nil {
						return p.errf(v, "%s.from_uri: %v", pp, err)
					}
					pr.FromURI = u
					s.fromURIDefaulted = false
					return nil
				},
			})
		},
	})
	if err != nil {
		return nil, err
	}
	if hopsNode == nil {
		return nil, p.errf(key, "%s: hops is required", path)
	}
	if s.Policy == PolicyWeighted {
		total := 0
		for _, h := range s.Hops {
			total += h.Weight
		}
		if total == 0 {
			return nil, p.errf(hopsNode, "%s: weighted policy needs at least one hop with weight > 0", path)
		}
	}
	return s, nil
}

// checkFromURI keeps the probe From a plain sip:/sips: URI; anything
// fancier belongs in a real UA, not a health check.
func checkFromURI(u string) error {
	l := strings.ToLower(u)
	if !strings.HasPrefix(l, "sip:") && !strings.HasPrefix(l, "sips:") {
		return fmt.Errorf("invalid URI %q (want sip:user@host)", u)
	}
	if strings.ContainsAny(u, " \t<>\"") || strings.HasSuffix(l, ":") {
		return fmt.Errorf("invalid URI %q (want sip:user@host)", u)
	}
	return nil
}

func (p *parser) hops(s *DestinationSet, v *yaml.Node, path string) error {
	items, err := p.sequence(v, path)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return p.errf(v, "%s: at least one hop is required", path)
	}
	for j, it := range items {
		hp := fmt.Sprintf("%s[%d]", path, j)
		var uriNode *yaml.Node
		weight := 1
		if it.Kind == yaml.MappingNode {
			err := p.mapping(it, hp, map[string]field{
				"uri": func(_, v *yaml.Node) error {
					uriNode = v
					hp += ".uri"
					return p.scalar(v, hp, "a string")
				},
				"weight": intField(&p.decoder, &weight, hp+".weight", 0, 1_000_000),
			})
			if err != nil {
				return err
			}
			if uriNode == nil {
				return p.errf(it, "%s: uri is required", hp)
			}
		} else {
			if err := p.scalar(it, hp, "a hop URI or a mapping with uri and weight"); err != nil {
				return err
			}
			uriNode = it
		}
		h, err := parseHop(uriNode.Value)
		if err != nil {
			return p.errf(uriNode, "%s: %v", hp, err)
		}
		h.Weight = weight
		s.Hops = append(s.Hops, h)
		p.hopNodes[s.Name] = append(p.hopNodes[s.Name], uriNode)
	}
	return nil
}

func (p *parser) routes(v *yaml.Node) error {
	items, err := p.sequence(v, "routes")
	if err != nil {
		return err
	}
	names := map[string]int{}
	for i, it := range items {
		path := fmt.Sprintf("routes[%d]", i)
		var r Route
		var nodes routeNodes
		nodes.item = it
		err := p.mapping(it, path, map[string]field{
			"name": func(_, v *yaml.Node) (err error) {
				r.Name, err = p.str(v, path+".name")
				if err == nil {
					if j, dup := names[r.Name]; dup {
						return p.errf(v, "%s.name: duplicate route name %q (also routes[%d])", path, r.Name, j)
					}
					names[r.Name] = i
				}
				return err
			},
			"to": func(_, v *yaml.Node) (err error) {
				nodes.to = v
				r.To, err = p.nonEmpty(v, path+".to")
				return err
			},
			"lookup": func(_, v *yaml.Node) (err error) {
				nodes.lookup = v
				r.Lookup, err = p.nonEmpty(v, path+".lookup")
				return err
			},
			"match": func(k, v *yaml.Node) error {
				nodes.match = k
				return p.match(&r.Match, v, path+".match")
			},
		})
		if err != nil {
			return err
		}
		if r.Name == "" {
			return p.errf(it, "%s: name is required", path)
		}
		switch {
		case nodes.to == nil && nodes.lookup == nil:
			return p.errf(it, "%s: to or lookup is required (the destination set to use, or the route lookup to ask)", path)
		case nodes.to != nil && nodes.lookup != nil:
			return p.errf(later(nodes.to, nodes.lookup), "%s: to and lookup are mutually exclusive (a route sends to a destination set or asks a lookup, not both)", path)
		}
		p.cfg.Routes = append(p.cfg.Routes, r)
		p.routeNodes = append(p.routeNodes, nodes)
	}
	return nil
}

// later returns whichever of a and b comes later in the document.
func later(a, b *yaml.Node) *yaml.Node {
	if a.Line > b.Line || a.Line == b.Line && a.Column > b.Column {
		return a
	}
	return b
}

// methods parses a list of method names, upper-cased and deduplicated.
// check, if not nil, vets each name; its error is reported at the item.
func (p *parser) methods(v *yaml.Node, path string, check func(string) error) ([]string, error) {
	items, err := p.sequence(v, path)
	if err != nil {
		return nil, err
	}
	var out []string
	for j, it := range items {
		mp := fmt.Sprintf("%s[%d]", path, j)
		s, err := p.str(it, mp)
		if err != nil {
			return nil, err
		}
		s = strings.ToUpper(strings.TrimSpace(s))
		if !validToken(s) {
			return nil, p.errf(it, "%s: invalid method %q", mp, it.Value)
		}
		if check != nil {
			if err := check(s); err != nil {
				return nil, p.errf(it, "%s: %v", mp, err)
			}
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// regex compiles a non-empty Go RE2 expression.
func (p *parser) regex(v *yaml.Node, path string) (*regexp.Regexp, error) {
	s, err := p.nonEmpty(v, path)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, p.errf(v, "%s: %v", path, err)
	}
	return re, nil
}

func (p *parser) match(m *Match, v *yaml.Node, path string) error {
	return p.mapping(v, path, map[string]field{
		"methods": func(_, v *yaml.Node) (err error) {
			m.Methods, err = p.methods(v, path+".methods", nil)
			return err
		},
		"user": func(_, v *yaml.Node) (err error) {
			m.User, err = p.nonEmpty(v, path+".user")
			return err
		},
		"user_prefix": func(_, v *yaml.Node) (err error) {
			m.UserPrefix, err = p.nonEmpty(v, path+".user_prefix")
			return err
		},
		"host": func(_, v *yaml.Node) (err error) {
			m.Host, err = p.nonEmpty(v, path+".host")
			return err
		},
		"uri_regex": func(_, v *yaml.Node) (err error) {
			m.URIRegex, err = p.regex(v, path+".uri_regex")
			return err
		},
	})
}

// nonEmpty rejects "": an empty condition would either match everything
// or nothing, and both are surprising.
func (p *parser) nonEmpty(v *yaml.Node, path string) (string, error) {
	s, err := p.str(v, path)
	if err == nil && s == "" {
		err = p.errf(v, "%s: must not be empty", path)
	}
	return s, err
}

// validToken checks the RFC 3261 token syntax used by method names.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-.!%*_+`'~", r)) {
			return false
		}
	}
	return true
}

// validate performs the checks that need the whole document.
func (p *parser) validate() error {
	c := p.cfg
	var def *Route
	for i := range c.Routes {
		r, n := &c.Routes[i], p.routeNodes[i]
		if r.Lookup != "" {
			if _, ok := c.Lookups[r.Lookup]; !ok {
				return p.errf(n.lookup, "routes[%d].lookup: unknown lookup %q%s", i, r.Lookup, known(c.Lookups, "lookups"))
			}
		} else if _, ok := c.Destinations[r.To]; !ok {
			return p.errf(n.to, "routes[%d].to: unknown destination set %q", i, r.To)
		}
		if r.Name == DefaultRouteName {
			def = r
			if !r.Match.IsZero() {
				return p.errf(n.match, "routes[%d]: the %q route must not have match conditions (it is the fallback)", i, DefaultRouteName)
			}
		}
	}
	if def == nil {
		n := p.routesKey
		if n == nil {
			n = p.root
		}
		return p.errf(n, "routes: a route named %q is required (it is used when no other route matches)", DefaultRouteName)
	}
	if err := p.validateSuspend(); err != nil {
		return err
	}

	// Timer F bounds any non-INVITE transaction, OPTIONS probes included.
	timerF := 64 * c.Timers.T1
	for _, s := range c.Destinations {
		s.Probe.Timeout = min(s.Probe.Timeout, timerF)
		if s.fromURIDefaulted {
			s.Probe.FromURI = defaultFromURI(c.Listen)
		}
	}
	return nil
}

// resolveHops turns host names into addresses and rejects duplicate hops
// within a set (they would be tried twice and probed twice).
func (p *parser) resolveHops() error {
	for _, name := range sortedKeys(p.cfg.Destinations) {
		s := p.cfg.Destinations[name]
		seen := map[string]int{}
		for j := range s.Hops {
			h, n := &s.Hops[j], p.hopNodes[name][j]
			path := fmt.Sprintf("destinations.%s.hops[%d]", name, j)
			if err := resolveHop(p.res, h); err != nil {
				return p.errf(n, "%s: %v", path, err)
			}
			key := h.Transport + ":" + h.Addr.String()
			if k, dup := seen[key]; dup {
				return p.errf(n, "%s: duplicate hop %s (same as hops[%d])", path, key, k)
			}
			seen[key] = j
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Map order is random; sort so the first error is reproducible.
	slices.Sort(keys)
	return keys
}

func resolveHop(res resolver, h *Hop) error {
	if a, err := netip.ParseAddr(h.Host); err == nil {
		h.Addr = netip.AddrPortFrom(a.Unmap(), uint16(h.Port))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	addrs, err := res.LookupNetIP(ctx, "ip", h.Host)
	if err != nil {
		return fmt.Errorf("resolve %q: %w", h.Host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolve %q: no addresses", h.Host)
	}
	// The resolver already orders by RFC 6724 preference.
	h.Addr = netip.AddrPortFrom(addrs[0].Unmap(), uint16(h.Port))
	return nil
}

func strField(d *decoder, dst *string, path string) field {
	return func(_, v *yaml.Node) (err error) {
		*dst, err = d.str(v, path)
		return err
	}
}

func (p *parser) tracing(v *yaml.Node) error {
	c := &p.cfg.Tracing
	return p.mapping(v, "tracing", map[string]field{
		"enabled": func(_, v *yaml.Node) error {
			b, err := p.bool(v, "tracing.enabled")
			c.Enabled = &b
			return err
		},
		"endpoint":    strField(&p.decoder, &c.Endpoint, "tracing.endpoint"),
		"protocol":    enumField(&p.decoder, &c.Protocol, "tracing.protocol", TracingHTTP, TracingGRPC),
		"headers":     func(_, v *yaml.Node) (err error) { c.Headers, err = p.stringMap(v, "tracing.headers"); return err },
		"insecure":    boolField(&p.decoder, &c.Insecure, "tracing.insecure"),
		"ca_file":     strField(&p.decoder, &c.CAFile, "tracing.ca_file"),
		"cert_file":   strField(&p.decoder, &c.CertFile, "tracing.cert_file"),
		"key_file":    strField(&p.decoder, &c.KeyFile, "tracing.key_file"),
		"compression": enumField(&p.decoder, &c.Compression, "tracing.compression", "gzip", "none"),
		"sample_ratio": func(_, v *yaml.Node) (err error) {
			c.SampleRatio, err = p.ratio(v, "tracing.sample_ratio")
			return err
		},
		"queue_size":     intField(&p.decoder, &c.QueueSize, "tracing.queue_size", 64, 1<<22),
		"batch_size":     intField(&p.decoder, &c.BatchSize, "tracing.batch_size", 1, 1<<16),
		"batch_timeout":  durField(&p.decoder, &c.BatchTimeout, "tracing.batch_timeout", time.Millisecond),
		"export_timeout": durField(&p.decoder, &c.ExportTimeout, "tracing.export_timeout", time.Millisecond),
		"service_name":   strField(&p.decoder, &c.ServiceName, "tracing.service_name"),
		"resource_attributes": func(_, v *yaml.Node) (err error) {
			c.ResourceAttributes, err = p.stringMap(v, "tracing.resource_attributes")
			return err
		},
		"redact": enumField(&p.decoder, &c.Redact, "tracing.redact", RedactNone, RedactHash, RedactDrop),
		"settle": durField(&p.decoder, &c.Settle, "tracing.settle", time.Millisecond),
	})
}

// ratio parses a number in [0, 1].
func (p *parser) ratio(v *yaml.Node, path string) (float64, error) {
	if err := p.scalar(v, path, "a number from 0 to 1"); err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(v.Value, 64)
	if err != nil || (v.ShortTag() != "!!float" && v.ShortTag() != "!!int") {
		return 0, p.errf(v, "%s: want a number from 0 to 1, got %q", path, v.Value)
	}
	if f < 0 || f > 1 {
		return 0, p.errf(v, "%s: %s out of range 0-1", path, v.Value)
	}
	return f, nil
}

// stringMap parses a mapping of strings to strings.
func (p *parser) stringMap(v *yaml.Node, path string) (map[string]string, error) {
	v = deref(v)
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.MappingNode {
		return nil, p.errf(v, "%s: want a mapping of names to strings, got %s", path, describe(v))
	}
	m := make(map[string]string, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], deref(v.Content[i+1])
		name, err := p.str(k, path)
		if err != nil {
			return nil, err
		}
		s, err := p.str(val, path+"."+name)
		if err != nil {
			return nil, err
		}
		m[name] = s
	}
	return m, nil
}

// metricsListen parses metrics.listen: host:port with an IP literal, or
// "" / off to disable the endpoint.
func (p *parser) metricsListen(v *yaml.Node) error {
	s, err := p.str(v, "metrics.listen")
	if err != nil {
		return err
	}
	if s == "" || s == "off" {
		p.cfg.Metrics.Listen = ""
		return nil
	}
	if _, err := netip.ParseAddrPort(s); err != nil {
		return p.errf(v, "metrics.listen: %q is not an IP:port (e.g. 127.0.0.1:9464), or off", s)
	}
	p.cfg.Metrics.Listen = s
	return nil
}
