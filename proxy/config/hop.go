package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// parseHop parses a hop URI as operators write dispatcher entries:
//
//	127.0.0.1:5070;transport=udp
//	sip:10.0.0.5:5060;transport=tcp
//	[::1]:5070
//	pbx.example.net
//
// The scheme is optional, the port defaults to 5060 and the transport to
// udp. The address is not resolved here (see resolveHop).
func parseHop(uri string) (Hop, error) {
	h := Hop{URI: uri, Port: DefaultHopPort, Transport: TransportUDP}
	s := strings.TrimSpace(uri)
	if s == "" {
		return Hop{}, errors.New("empty hop URI")
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "sips:"):
		return Hop{}, errors.New("sips is not supported (no TLS transport); use sip: with transport=tcp")
	case strings.HasPrefix(lower, "sip:"):
		s = s[len("sip:"):]
	}
	if strings.ContainsRune(s, '@') {
		return Hop{}, errors.New("a hop must not have a user part")
	}
	if strings.ContainsRune(s, '?') {
		return Hop{}, errors.New("a hop must not have URI headers")
	}
	hostport, params, _ := strings.Cut(s, ";")

	var host, port string
	switch {
	case strings.HasPrefix(hostport, "["):
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return Hop{}, errors.New("missing ']' after IPv6 address")
		}
		host = hostport[1:end]
		rest := hostport[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return Hop{}, fmt.Errorf("unexpected %q after IPv6 address", rest)
			}
			port = rest[1:]
			if port == "" {
				return Hop{}, errors.New("missing port after ':'")
			}
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return Hop{}, fmt.Errorf("invalid IPv6 address %q", host)
		}
	case strings.Count(hostport, ":") > 1:
		return Hop{}, errors.New("IPv6 addresses must be in brackets, e.g. [::1]:5060")
	default:
		var hasPort bool
		host, port, hasPort = strings.Cut(hostport, ":")
		if hasPort && port == "" {
			return Hop{}, errors.New("missing port after ':'")
		}
		if host == "" {
			return Hop{}, errors.New("missing host")
		}
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
			return Hop{}, fmt.Errorf("invalid host %q", host)
		}
	}
	h.Host = host
	if port != "" {
		p, err := parsePort(port)
		if err != nil {
			return Hop{}, err
		}
		h.Port = p
	}

	if params != "" {
		for _, prm := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(prm, "=")
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "transport":
				t := strings.ToLower(strings.TrimSpace(v))
				if t != TransportUDP && t != TransportTCP {
					return Hop{}, fmt.Errorf("unsupported transport %q (want udp or tcp)", v)
				}
				h.Transport = t
			case "lr":
				// Harmless and common in pasted dispatcher lists: a hop
				// is always routed to, so loose routing is implied.
			default:
				// Strict on purpose: an unknown parameter is usually a
				// typo (";transprot=tcp") that would silently mean udp.
				return Hop{}, fmt.Errorf("unsupported URI parameter %q (only transport is allowed)", k)
			}
		}
	}
	return h, nil
}

// ParseHopLiteral parses a hop URI in the same syntax as a destination-set
// hop, but requires an IP literal and fills Addr. It is for hops that
// arrive at run time (an HTTP route lookup), where a DNS lookup would block.
func ParseHopLiteral(uri string) (Hop, error) {
	h, err := parseHop(uri)
	if err != nil {
		return Hop{}, err
	}
	a, err := netip.ParseAddr(h.Host)
	if err != nil {
		return Hop{}, fmt.Errorf("hop %q: an IP address is required here, not a host name", uri)
	}
	h.Addr = netip.AddrPortFrom(a.Unmap(), uint16(h.Port))
	if h.Weight == 0 {
		h.Weight = 1
	}
	return h, nil
}
