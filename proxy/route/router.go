package route

import (
	"fmt"
	"math/bits"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/config"
)

// Hop is one next hop of one destination set.
type Hop struct {
	Set       string // destination set name
	Index     int    // position in the set, in config order
	Host      string // as configured (host name or IP, IPv6 without brackets)
	Port      int
	Transport string // "udp" or "tcp"
	Addr      netip.AddrPort
	Weight    int
	// Key identifies the network destination, e.g. "udp:127.0.0.1:5070".
	// It is unique within a set (config rejects duplicates); two sets
	// listing the same destination share the Key but are distinct hops
	// with their own health, as in Kamailio's dispatcher.
	Key string

	id int // index into Router.hops and Health.states
}

// Set is a destination set ready for planning.
type Set struct {
	Name   string
	Policy string // config.PolicyOrdered or config.PolicyWeighted
	Hops   []*Hop // config order
	Probe  config.Probe

	failoverOn [(700 + 63) / 64]uint64 // bitmap of status codes 0-699
	byWeight   []*Hop                  // descending weight, config order on ties
}

// FailoverOn reports whether a final response with this status should
// make the proxy try the next hop.
func (s *Set) FailoverOn(status int) bool {
	if status < 0 || status >= len(s.failoverOn)*64 {
		return false
	}
	return s.failoverOn[status/64]&(1<<(status%64)) != 0
}

// Plan appends to dst the hops to try for one request, in order, and
// returns the extended slice; passing a reused dst[:0] makes it
// allocation-free.
//
// ordered: config order. weighted: the first hop is drawn at random with
// probability proportional to its weight, using rnd (a fast per-worker
// random number, e.g. from a math/rand/v2 PCG the worker owns, so no
// shared generator is contended); the rest follow in descending weight.
//
// Hops that h reports down are moved to the end (in the same relative
// order) instead of being dropped: if every hop is down the request is
// still tried rather than answered with a 503. For weighted sets the
// random draw is made among the up hops only, so traffic is redistributed
// in proportion to the remaining weights instead of piling onto the
// heaviest survivor. A nil h treats every hop as up.
func (s *Set) Plan(rnd uint64, h *Health, dst []*Hop) []*Hop {
	if s.Policy != config.PolicyWeighted {
		return appendUpThenDown(dst, s.Hops, nil, h)
	}
	first := s.pick(rnd, h)
	dst = append(dst, first)
	return appendUpThenDown(dst, s.byWeight, first, h)
}

// appendUpThenDown appends hops except skip, up ones first, each group in
// the given order. Each hop's health is read exactly once: reading it
// twice (once per group) could list a hop twice, or drop it, when the
// prober flips it in between. The stable partition shifts in place, which
// for a handful of hops is cheaper than sorting and never allocates.
func appendUpThenDown(dst, hops []*Hop, skip *Hop, h *Health) []*Hop {
	up := len(dst) // dst[up:] holds the down hops appended so far
	for _, hop := range hops {
		if hop == skip {
			continue
		}
		dst = append(dst, hop)
		if h.Up(hop) {
			copy(dst[up+1:], dst[up:len(dst)-1])
			dst[up] = hop
			up++
		}
	}
	return dst
}

// pick draws a hop by weight among up hops, or among all hops when none
// is up (or no up hop has weight). If health flips between the two passes
// the draw may land past the end; it then falls back to the heaviest hop,
// which is a valid (if slightly less fair) choice for that one request.
func (s *Set) pick(rnd uint64, h *Health) *Hop {
	var total uint64
	for _, hop := range s.Hops {
		if h.Up(hop) {
			total += uint64(hop.Weight)
		}
	}
	upOnly := total > 0
	if !upOnly {
		for _, hop := range s.Hops {
			total += uint64(hop.Weight)
		}
	}
	if total == 0 {
		// Unreachable for a validated config; degrade to ordered.
		return s.byWeight[0]
	}
	// Lemire's multiply-shift maps rnd onto [0,total) using its high
	// bits, without a division and with negligible bias.
	n, _ := bits.Mul64(rnd, total)
	for _, hop := range s.Hops {
		if upOnly && !h.Up(hop) {
			continue
		}
		w := uint64(hop.Weight)
		if n < w {
			return hop
		}
		n -= w
	}
	return s.byWeight[0] // unreachable: n < total
}

// Route is a named route resolved to its destination set, or naming the
// HTTP route lookup that decides per request. Exactly one of Set and
// Lookup is set.
type Route struct {
	Name   string
	Set    *Set   // nil when Lookup is set
	Lookup string // lookup name (config.Config.Lookups), or ""

	match matcher
}

type matcher struct {
	methods    []string
	user       string
	userPrefix string
	host       string
	re         *regexp.Regexp
}

// Router holds routes and sets built from one config snapshot. It is
// immutable after New and safe for concurrent use.
type Router struct {
	routes  []*Route      // config order, default route moved last
	sets    []*Set        // sorted by name
	hops    []*Hop        // all hops, by set name then index
	suspend []suspendRule // config order
}

// New builds a Router. cfg must come from config.Parse/Load, which
// guarantees a default route and existing destination sets, lookups and
// queues; New panics otherwise, since that is a programming error, not an
// operator one.
func New(cfg *config.Config) *Router {
	r := &Router{}
	byName := make(map[string]*Set, len(cfg.Destinations))
	names := make([]string, 0, len(cfg.Destinations))
	for name := range cfg.Destinations {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ds := cfg.Destinations[name]
		s := &Set{Name: name, Policy: ds.Policy, Probe: ds.Probe}
		for _, code := range ds.FailoverOn {
			if code >= 0 && code < len(s.failoverOn)*64 {
				s.failoverOn[code/64] |= 1 << (code % 64)
			}
		}
		for i, ch := range ds.Hops {
			hop := &Hop{
				Set: name, Index: i, Host: ch.Host, Port: ch.Port, Transport: ch.Transport,
				Addr: ch.Addr, Weight: ch.Weight, Key: ch.Transport + ":" + ch.Addr.String(),
				id: len(r.hops),
			}
			s.Hops = append(s.Hops, hop)
			r.hops = append(r.hops, hop)
		}
		s.byWeight = slices.Clone(s.Hops)
		slices.SortStableFunc(s.byWeight, func(a, b *Hop) int { return b.Weight - a.Weight })
		if len(s.Hops) == 0 {
			panic(fmt.Sprintf("route.New: destination set %q has no hops", name))
		}
		byName[name] = s
		r.sets = append(r.sets, s)
	}

	var def *Route
	for _, cr := range cfg.Routes {
		var s *Set
		if cr.Lookup != "" {
			if _, ok := cfg.Lookups[cr.Lookup]; !ok {
				panic(fmt.Sprintf("route.New: route %q uses unknown lookup %q", cr.Name, cr.Lookup))
			}
		} else {
			var ok bool
			if s, ok = byName[cr.To]; !ok {
				panic(fmt.Sprintf("route.New: route %q uses unknown destination set %q", cr.Name, cr.To))
			}
		}
		rt := &Route{Name: cr.Name, Set: s, Lookup: cr.Lookup, match: matcher{
			methods:    cr.Match.Methods,
			user:       cr.Match.User,
			userPrefix: cr.Match.UserPrefix,
			host:       cr.Match.Host,
			re:         cr.Match.URIRegex,
		}}
		if cr.Name == config.DefaultRouteName {
			def = rt
			continue
		}
		r.routes = append(r.routes, rt)
	}
	if def == nil {
		panic("route.New: config has no \"default\" route")
	}
	// The default route matches everything, so it must be tried last
	// wherever the operator wrote it.
	def.match = matcher{}
	r.routes = append(r.routes, def)
	r.suspend = newSuspendRules(cfg)
	return r
}

// Match returns the first route, in config order, whose conditions all
// hold for the request; the "default" route if none does. Never nil.
//
// Methods compare case-sensitively (RFC 3261 §7.1: "invite" is not
// INVITE); users compare exactly; the host case-insensitively; uri_regex
// runs on the full Request-URI string, built at most once per call and
// only if a regex route is reached. A nil ruri has an empty user and host.
func (r *Router) Match(method string, ruri *sip.Uri) *Route {
	var user, host, full string
	if ruri != nil {
		user, host = ruri.User, ruri.Host
	}
	fullDone := false
	for _, rt := range r.routes[:len(r.routes)-1] {
		m := &rt.match
		if len(m.methods) > 0 && !slices.Contains(m.methods, method) {
			continue
		}
		if m.user != "" && user != m.user {
			continue
		}
		if m.userPrefix != "" && !strings.HasPrefix(user, m.userPrefix) {
			continue
		}
		if m.host != "" && !strings.EqualFold(host, m.host) {
			continue
		}
		if m.re != nil {
			if !fullDone {
				if ruri != nil {
					full = ruri.String()
				}
				fullDone = true
			}
			if !m.re.MatchString(full) {
				continue
			}
		}
		return rt
	}
	return r.routes[len(r.routes)-1]
}

// Sets returns all destination sets sorted by name. Do not modify.
func (r *Router) Sets() []*Set { return r.sets }

// Hops returns every hop of every set (sets by name, hops in config
// order), for the prober. Do not modify.
func (r *Router) Hops() []*Hop { return r.hops }

// ProbeOK classifies an OPTIONS probe's final response the way Kamailio's
// dispatcher does by default: any reply proves the hop alive, except 408
// and 503, which mean it cannot take traffic.
func ProbeOK(status int) bool {
	return status >= 100 && status != 408 && status != 503
}
