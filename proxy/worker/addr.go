package worker

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/route"
	"sipvigil/proxy/transport"
)

// target is where one branch of a request goes.
type target struct {
	proto transport.Proto
	addr  netip.AddrPort
	hop   *route.Hop // nil when the target came from Route or Request-URI
}

// local picks the listen address a message to dst leaves from: same
// transport and address family. UDP datagrams must leave from the listening
// socket so that the Via sent-by is where responses come back.
func (w *Worker) local(proto transport.Proto, dst netip.Addr) (Local, bool) {
	var fallback Local
	found := false
	for _, l := range w.opt.Locals {
		if l.Proto != proto {
			continue
		}
		if l.Addr.Addr().Is4() == dst.Is4() {
			return l, true
		}
		if !found {
			fallback, found = l, true
		}
	}
	return fallback, found
}

// localFor returns the Local a message arrived on.
func (w *Worker) localFor(proto transport.Proto, addr netip.AddrPort) Local {
	for _, l := range w.opt.Locals {
		if l.Proto == proto && l.Addr == addr {
			return l
		}
	}
	for _, l := range w.opt.Locals {
		if l.Addr.Addr() == addr.Addr() && l.Addr.Port() == addr.Port() {
			return l
		}
	}
	return Local{Proto: proto, Addr: addr, Host: addr.Addr().String(), Port: int(addr.Port())}
}

// isOurs reports whether host:port names this proxy. A missing port means
// 5060, as in RFC 3261 §19.1.2.
func (w *Worker) isOurs(host string, port int) bool {
	if port == 0 {
		port = 5060
	}
	if len(host) > 0 && host[0] == '[' {
		host = strings.Trim(host, "[]")
	}
	for _, n := range w.names {
		if port == n.port && (host == n.host || strings.EqualFold(host, n.host)) {
			return true
		}
	}
	// Other spellings of an IPv6 address (zeros, case) are rare; compare
	// them parsed only when the cheap test failed.
	if strings.IndexByte(host, ':') >= 0 {
		if a, err := netip.ParseAddr(host); err == nil {
			for _, l := range w.opt.Locals {
				if a.Unmap() == l.Addr.Addr() && (port == l.Port || port == int(l.Addr.Port())) {
					return true
				}
			}
		}
	}
	return false
}

// ourName is one host:port spelling that names this proxy: each Local's
// advertised host and port, and its listen address.
type ourName struct {
	host string
	port int
}

func ourNames(locals []Local) []ourName {
	var names []ourName
	add := func(n ourName) {
		for _, x := range names {
			if x == n {
				return
			}
		}
		names = append(names, n)
	}
	for _, l := range locals {
		add(ourName{host: l.Host, port: l.Port})
		add(ourName{host: l.Addr.Addr().String(), port: int(l.Addr.Port())})
		add(ourName{host: l.Addr.Addr().String(), port: l.Port})
	}
	return names
}

// uriTarget resolves a SIP URI (Route or Request-URI) to a target. Only IP
// literals are accepted: a DNS lookup would block the worker and every
// dialog it owns. Hostnames configured as destinations are resolved at load.
func uriTarget(u *sip.Uri) (target, bool) {
	host := strings.Trim(u.Host, "[]")
	if m, ok := u.UriParams.Get("maddr"); ok && m != "" {
		host = strings.Trim(m, "[]")
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return target{}, false
	}
	proto := transport.UDP
	if t, ok := u.UriParams.Get("transport"); ok && strings.EqualFold(t, "tcp") {
		proto = transport.TCP
	}
	port := u.Port
	if port == 0 {
		port = 5060
	}
	return target{proto: proto, addr: netip.AddrPortFrom(ip.Unmap(), uint16(port))}, true
}

// viaTarget is where a response goes next once our Via is popped:
// received/rport when the previous hop sent them (RFC 3581), else sent-by.
func viaTarget(v *sip.ViaHeader) (target, bool) {
	host := strings.Trim(v.Host, "[]")
	if r, ok := v.Params.Get("received"); ok && r != "" {
		host = strings.Trim(r, "[]")
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return target{}, false
	}
	port := v.Port
	if rp, ok := v.Params.Get("rport"); ok && rp != "" {
		if n, err := strconv.Atoi(rp); err == nil {
			port = n
		}
	}
	if port == 0 {
		port = 5060
	}
	proto := transport.UDP
	if strings.EqualFold(v.Transport, "TCP") {
		proto = transport.TCP
	}
	return target{proto: proto, addr: netip.AddrPortFrom(ip.Unmap(), uint16(port))}, true
}

// hopTarget converts a configured hop.
func hopTarget(h *route.Hop) target {
	proto := transport.UDP
	if strings.EqualFold(h.Transport, "tcp") {
		proto = transport.TCP
	}
	return target{proto: proto, addr: h.Addr, hop: h}
}
