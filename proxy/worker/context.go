package worker

import (
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/observe"
	"sipvigil/proxy/transport"
	"sipvigil/proxy/txn"
)

// serverCtx is the proxy's response context for one server transaction
// (RFC 3261 §16.2): the transaction itself, where its responses go, and the
// branches forwarded for it.
type serverCtx struct {
	timed
	key      string
	inviteID string // branch+sent-by, for INVITEs only
	tx       *txn.Server
	req      *sip.Request       // as received; never modified
	reply    transport.Outbound // where responses go (Data unset)
	inLocal  Local              // the address it arrived on

	first       *sip.Request // the prepared copy routing looked at, used by the first branch
	loopHash    string
	recordRoute bool
	plan        []target
	next        int
	branches    []*branch
	best        *sip.Response
	finalSent   bool
	cancelled   bool
	got6xx      bool
	initial     bool
	callID      string
	susp        *suspension  // set while suspended
	rec         *observe.Txn // telemetry record until the final response is out
	recResp     []respRef    // inbound responses in rec, for relay indices
	timerC      time.Time
}

// branch is one forwarded copy of a request: a client transaction.
type branch struct {
	timed
	key          string
	ctx          *serverCtx // nil for probes
	tx           *txn.Client
	req          *sip.Request
	data         []byte // serialized request, for retransmissions
	out          transport.Outbound
	to           target
	provisional  bool
	final        bool
	cancelWanted bool
	cancelSent   bool
	probeOwner   *prober // set on OPTIONS health probes
	probeExpiry  time.Time
	sentAt       time.Time
}

// serverTxDeadline is the earlier of the transaction's timers and Timer C.
func (c *serverCtx) deadline() time.Time {
	d := minTime(c.tx.Deadline(), c.timerC)
	if c.susp != nil {
		d = minTime(d, c.susp.deadline)
	}
	return d
}

func (b *branch) deadline() time.Time {
	return minTime(b.tx.Deadline(), b.probeExpiry)
}
