package config

import (
	"fmt"
	"net"
)

// Override applies the --listen and --route command-line flags; an empty
// argument leaves that part alone. It mutates c, so call it right after
// Load/Parse and before c is shared with other goroutines.
//
// listen replaces all listen entries with one address serving udp and tcp.
// defaultRoute replaces the hops of the destination set that the "default"
// route points to with one hop, parsed like a hop URI in the file (an
// error if the default route uses a lookup instead). Other
// routes using that same set see the change too: the flag is meant for
// "send everything here" runs.
func (c *Config) Override(listen, defaultRoute string) error {
	return c.override(listen, defaultRoute, net.DefaultResolver)
}

func (c *Config) override(listen, defaultRoute string, res resolver) error {
	if listen != "" {
		ap, err := parseListenAddr(listen)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		l, err := newListen(ap, nil, "")
		if err != nil {
			return fmt.Errorf("--listen %q: %w", listen, err)
		}
		c.Listen = []Listen{l}
		// Probe From URIs derived from the old listen address follow it.
		for _, s := range c.Destinations {
			if s.fromURIDefaulted {
				s.Probe.FromURI = defaultFromURI(c.Listen)
			}
		}
	}
	if defaultRoute != "" {
		r := c.DefaultRoute()
		if r == nil {
			return fmt.Errorf("--route: config has no %q route", DefaultRouteName)
		}
		if r.Lookup != "" {
			return fmt.Errorf("--route: the %q route asks lookup %q, it has no destination set to replace", DefaultRouteName, r.Lookup)
		}
		s, ok := c.Destinations[r.To]
		if !ok {
			return fmt.Errorf("--route: destination set %q not found", r.To)
		}
		h, err := parseHop(defaultRoute)
		if err != nil {
			return fmt.Errorf("--route %q: %w", defaultRoute, err)
		}
		h.Weight = 1
		if err := resolveHop(res, &h); err != nil {
			return fmt.Errorf("--route %q: %w", defaultRoute, err)
		}
		s.Hops = []Hop{h}
	}
	return nil
}
