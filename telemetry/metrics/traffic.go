package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"sipvigil/proxy/observe"
	"sipvigil/telemetry/evidence"
)

// Label index spaces of the message counters. Every child is resolved once
// in NewTraffic and kept in arrays, so Export never hashes label values and
// never allocates, and every series exists from the start at 0 (Prometheus'
// advice for label values known in advance: rate() and ratios then work
// before the first 5xx instead of returning nothing).
const (
	numDirs       = 2  // in, out
	numTransports = 2  // udp, tcp
	numMethods    = 15 // the 14 methods methodIndex knows, and "other"
	numClasses    = 6  // 1xx..6xx
	numKinds      = 2  // request, response
)

// methodIndex bounds the method label: a method outside the common set
// (or a misspelt one from a broken peer: SIP methods are case-sensitive)
// is "other", so a peer cannot create series.
func methodIndex(m string) int {
	switch m {
	case "INVITE":
		return 0
	case "ACK":
		return 1
	case "BYE":
		return 2
	case "CANCEL":
		return 3
	case "OPTIONS":
		return 4
	case "REGISTER":
		return 5
	case "SUBSCRIBE":
		return 6
	case "NOTIFY":
		return 7
	case "PUBLISH":
		return 8
	case "MESSAGE":
		return 9
	case "INFO":
		return 10
	case "PRACK":
		return 11
	case "UPDATE":
		return 12
	case "REFER":
		return 13
	}
	return 14
}

func methodLabels() [numMethods]string {
	return [numMethods]string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "SUBSCRIBE",
		"NOTIFY", "PUBLISH", "MESSAGE", "INFO", "PRACK", "UPDATE", "REFER", "other"}
}

func dirLabels() [numDirs]string             { return [numDirs]string{"in", "out"} }
func transportLabels() [numTransports]string { return [numTransports]string{"udp", "tcp"} }
func classLabels() [numClasses]string {
	return [numClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx", "6xx"}
}
func kindLabels() [numKinds]string { return [numKinds]string{"request", "response"} }

// Traffic is the evidence.Sink behind the message counters and the
// processing, post-dial-delay and answer-time histograms. It runs on the
// evidence tracker's goroutine, after the settle delay, so it sees each
// transaction once, complete and with its best timestamps.
//
// What it counts is what the workers record: every message of a
// transaction from its request until its final response went out, ACKs for
// 2xx and stateless response relays. Not counted here: what the dispatcher
// answers statelessly before any worker (400 for a broken request, 503 at
// admission: sipvigil_overload_rejected_total), OPTIONS probes, and what a
// transaction absorbs after its record was closed (retransmissions of the
// request after the final response, the ACK for a non-2xx); and nothing at
// all for records the tracker dropped (sipvigil_evidence_records_dropped_total).
//
// Export must be called from one goroutine at a time (the tracker's); the
// children are pre-resolved, so a scrape in parallel is fine.
type Traffic struct {
	req  [numDirs][numTransports][numMethods]prometheus.Counter
	resp [numDirs][numTransports][numMethods][numClasses]prometheus.Counter
	retr [numDirs][numMethods]prometheus.Counter

	processing  [numKinds]prometheus.Observer
	pdd, answer prometheus.Observer
}

// NewTraffic registers the message metrics on reg and returns the sink to
// hand to evidence.New. Registering twice on one registry is a programming
// error and panics, like NewEvidence.
func NewTraffic(reg prometheus.Registerer) *Traffic {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sipvigil_requests_total",
		Help: "SIP requests received (in) and sent (out) within transactions, first transmissions only, by transport and method.",
	}, []string{"direction", "transport", "method"})
	responses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sipvigil_responses_total",
		Help: "SIP responses received (in) and sent (out) within transactions, first transmissions only, by transport, CSeq method and status class.",
	}, []string{"direction", "transport", "method", "status_class"})
	retransmissions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sipvigil_retransmissions_total",
		Help: "Retransmissions absorbed (in) or sent again (out: on a timer, or a response repeated to a retransmitted request) while their transaction was open, by method.",
	}, []string{"direction", "method"})
	processing := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sipvigil_processing_latency_seconds",
		Help: "Time from the proxy reading a message to handing its forward to the transport (user space, queue waits included), by kind: request or response.",
		// 1 µs .. 10 s, three buckets a decade: a relayed response takes
		// microseconds, a queued re-INVITE its delay, a lookup up to its
		// timeout.
		Buckets: prometheus.ExponentialBucketsRange(1e-6, 10, 22),
	}, []string{"kind"})
	pdd := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sipvigil_post_dial_delay_seconds",
		Help: "Initial INVITE in to its first 18x out (kernel timestamps where matched, else user space).",
		// Human scale: routing plus the far end starting to ring.
		Buckets: []float64{.05, .1, .25, .5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60},
	})
	answer := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sipvigil_invite_answer_seconds",
		Help: "Initial INVITE in to its 2xx out (kernel timestamps where matched, else user space).",
		// Ringing time, up to Timer C (180 s by default) and beyond.
		Buckets: []float64{.1, .5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300},
	})
	reg.MustRegister(requests, responses, retransmissions, processing, pdd, answer)

	t := &Traffic{pdd: pdd, answer: answer}
	methods, dirs, tps, classes := methodLabels(), dirLabels(), transportLabels(), classLabels()
	for d, dl := range dirs {
		for m, ml := range methods {
			t.retr[d][m] = retransmissions.WithLabelValues(dl, ml)
			for p, pl := range tps {
				t.req[d][p][m] = requests.WithLabelValues(dl, pl, ml)
				for c, cl := range classes {
					t.resp[d][p][m][c] = responses.WithLabelValues(dl, pl, ml, cl)
				}
			}
		}
	}
	for k, kl := range kindLabels() {
		t.processing[k] = processing.WithLabelValues(kl)
	}
	return t
}

// Export implements evidence.Sink.
func (t *Traffic) Export(r *evidence.Txn) {
	if r == nil || r.Txn == nil {
		return
	}
	// Only an initial INVITE (no To tag, as the worker saw it) is a call:
	// a re-INVITE's answer takes milliseconds and would drag the
	// answer-time histogram down.
	initial := r.Kind == observe.TxnServer && r.Method == "INVITE" && r.Initial &&
		len(r.Msgs) > 0 && r.Msgs[0].Msg != nil && r.Msgs[0].Dir == observe.In && r.Msgs[0].Status == 0
	var start int64
	if initial {
		start = r.Msgs[0].Mono // best time: kernel ingress when matched
	}
	ringing, final := false, false
	for i := range r.Msgs {
		m := &r.Msgs[i]
		if m.Msg == nil {
			continue
		}
		var d int
		switch m.Dir {
		case observe.In:
			d = 0
		case observe.Out:
			if m.ID == 0 {
				continue // the send failed: nothing went out (transport counts the error)
			}
			d = 1
		default:
			continue
		}
		mi := methodIndex(m.Method)
		if m.Retransmission {
			t.retr[d][mi].Inc()
			continue
		}
		p := 0
		if m.Proto == observe.ProtoTCP {
			p = 1
		}
		if m.Status == 0 {
			t.req[d][p][mi].Inc()
		} else if c := m.Status / 100; c >= 1 && c <= numClasses {
			t.resp[d][p][mi][c-1].Inc()
		}
		if d == 0 {
			continue
		}
		// Processing: user-space read of the original to user-space
		// hand-off of its forward (the proxy's own clock at both ends, so
		// it is what the proxy did, not what the kernel queued).
		if src := r.Relayed(i); src != nil && src.Msg != nil {
			if ns := m.Msg.Mono - src.Msg.Mono; ns >= 0 {
				k := 0
				if m.Status != 0 {
					k = 1
				}
				t.processing[k].Observe(float64(ns) / 1e9)
			}
		}
		if !initial || m.Status < 100 || final {
			continue
		}
		// PDD and answer time use each message's best time: a mix of
		// kernel and user stamps is off by microseconds, on a
		// measurement of seconds.
		ns := m.Mono - start
		switch {
		case m.Status >= 180 && m.Status < 190 && !ringing:
			ringing = true
			if ns >= 0 {
				t.pdd.Observe(float64(ns) / 1e9)
			}
		case m.Status >= 200:
			final = true
			if m.Status < 300 && ns >= 0 {
				t.answer.Observe(float64(ns) / 1e9)
			}
		}
	}
}
