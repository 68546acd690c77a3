package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"sipvigil/proxy/suspend"
)

// LookupSource lets tests scrape fake lookup clients (a real one only
// counts what real HTTP requests did).
type LookupSource = lookupSource

// NewSuspendCollector is the collector Register builds for Queues and
// Lookups, with lookups taken from fakes.
func NewSuspendCollector(qs []*suspend.Queue, ls []LookupSource) prometheus.Collector {
	var q []queueSource
	for _, x := range qs {
		q = append(q, x)
	}
	return newSuspendCollector(q, ls)
}
