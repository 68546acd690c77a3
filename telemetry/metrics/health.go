package metrics

import (
	"net"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"sipvigil/proxy/route"
)

// healthCollector reads hop health (route.Health.Snapshot): one atomic
// word per hop, so a scrape never slows the workers that consult it.
//
// sipvigil_hop_transitions_total is not exported: Health keeps no
// transition count (Report returns "changed" to the prober, which logs it),
// and counting flips between scrapes here would miss any that revert
// within one scrape interval.
type healthCollector struct {
	h       *route.Health
	up, rtt *prometheus.Desc
}

func newHealthCollector(h *route.Health) *healthCollector {
	l := []string{"set", "hop"}
	return &healthCollector{
		h: h,
		up: prometheus.NewDesc("sipvigil_hop_up",
			"Whether a next hop is considered up (1) or down (0) by OPTIONS probing and passive failures.", l, nil),
		rtt: prometheus.NewDesc("sipvigil_hop_probe_rtt_seconds",
			"Round-trip time of the last successful OPTIONS probe to a next hop; absent until one succeeded.", l, nil),
	}
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.rtt
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.h.Snapshot() {
		if st.Hop == nil {
			continue
		}
		hop := HopLabel(st.Hop)
		up := 0.0
		if st.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, st.Hop.Set, hop)
		if st.LastRTT > 0 {
			ch <- prometheus.MustNewConstMetric(c.rtt, prometheus.GaugeValue, st.LastRTT.Seconds(), st.Hop.Set, hop)
		}
	}
}

// HopLabel is the hop label value: "host:port;transport=udp", with the host
// as configured (a name stays a name, IPv6 is bracketed) and the transport
// always spelled out, so that one hop has one spelling whatever the config
// left implicit.
func HopLabel(h *route.Hop) string {
	return net.JoinHostPort(h.Host, strconv.Itoa(h.Port)) + ";transport=" + h.Transport
}
