package tracing

// Attribute keys of docs/tracing.md. The audit package keeps its own copy
// of the names it reads (it cannot import this package: this package's
// TestAuditReadsSpansBack runs the audit over what Export writes, which is
// also what proves the two copies agree).
const (
	// Transaction span (and, for the first two, message events).
	AttrSIPMethod     = "sip.method"
	AttrSIPStatusCode = "sip.status_code"
	AttrSIPCallID     = "sip.call_id"
	AttrSIPCSeq       = "sip.cseq"
	AttrSIPViaBranch  = "sip.via.branch"
	AttrSIPFromTag    = "sip.from.tag"

	AttrNetworkTransport   = "network.transport"
	AttrNetworkPeerAddress = "network.peer.address"
	AttrNetworkPeerPort    = "network.peer.port"
	AttrServerAddress      = "server.address"
	AttrServerPort         = "server.port"

	AttrTxnKind    = "sipvigil.txn.kind"
	AttrWorker     = "sipvigil.worker"
	AttrTSSource   = "sipvigil.ts.source"
	AttrMsgsTotal  = "sipvigil.msgs.total"
	AttrMsgsKernel = "sipvigil.msgs.kernel"

	// Message events.
	AttrMsgIndex          = "sipvigil.msg.index"
	AttrMsgRelays         = "sipvigil.msg.relays"
	AttrMsgRetransmission = "sipvigil.msg.retransmission"
	AttrMonoNS            = "sipvigil.mono_ns"
	AttrKernelMonoNS      = "sipvigil.kernel.mono_ns"
	AttrUserMonoNS        = "sipvigil.user.mono_ns"
	AttrPacketID          = "sipvigil.packet.id"

	// Queue-wait spans.
	AttrQueueName       = "sipvigil.queue.name"
	AttrQueueKind       = "sipvigil.queue.kind"
	AttrQueueDelayNS    = "sipvigil.queue.delay_ns"
	AttrQueueWaitNS     = "sipvigil.queue.wait_ns"
	AttrQueueOutcome    = "sipvigil.queue.outcome"
	AttrWaitStartMonoNS = "sipvigil.wait.start_mono_ns"
	AttrWaitEndMonoNS   = "sipvigil.wait.end_mono_ns"

	// Violation events.
	AttrViolationKind   = "sipvigil.violation.kind"
	AttrViolationDetail = "sipvigil.violation.detail"
)

// Resource attributes and the instrumentation scope.
const (
	attrServiceName      = "service.name"
	attrServiceVersion   = "service.version"
	attrServiceInstance  = "service.instance.id"
	attrHostName         = "host.name"
	instrumentationScope = "sipvigil/telemetry/tracing"
)

// Event names and fixed attribute values of docs/tracing.md.
const (
	EventIn        = "sip.in"
	EventOut       = "sip.out"
	EventViolation = "sip.order_violation"

	TSSourceKernel = "kernel"
	TSSourceUser   = "user"
	TSSourceMixed  = "mixed"

	// RelaySuffix ends the name of a span for a response relayed without a
	// transaction: "INVITE relay".
	RelaySuffix = " relay"
)
