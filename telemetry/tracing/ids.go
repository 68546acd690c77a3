package tracing

import (
	"crypto/sha256"
	"encoding/hex"

	"go.opentelemetry.io/otel/trace"
)

// traceIDDomain separates sipvigil's Call-ID hash from any other SHA-256
// of a Call-ID (docs/tracing.md, "Trace identity").
const traceIDDomain = "sipvigil/call-id\x00"

// TraceID derives the trace ID of a call: the first 16 bytes of
// SHA-256("sipvigil/call-id\x00" + callID). Every instance computes the same
// ID for the same call, so their spans meet in one trace without any
// propagation, and `sipvigil audit --call` finds them from the Call-ID.
func TraceID(callID string) trace.TraceID {
	// Hash from a stack buffer: the common Call-ID fits, and TraceID runs
	// once per transaction.
	var buf [256]byte
	var sum [sha256.Size]byte
	if len(traceIDDomain)+len(callID) <= len(buf) {
		b := append(buf[:0], traceIDDomain...)
		b = append(b, callID...)
		sum = sha256.Sum256(b)
	} else {
		h := sha256.New()
		h.Write([]byte(traceIDDomain))
		h.Write([]byte(callID))
		h.Sum(sum[:0])
	}
	var id trace.TraceID
	copy(id[:], sum[:16])
	return id
}

// Redaction modes (Config.Redact).
const (
	RedactNone = "none"
	RedactHash = "hash"
	RedactDrop = "drop"
)

// Redact applies a redaction mode to a Call-ID for span attributes and
// logs. It returns the value to record and whether to record it at all:
// "none" (or "") keeps the Call-ID, "hash" replaces it with "sha256:" and
// the first 16 hex digits of SHA-256(Call-ID), stable so that a call's
// spans still group, and "drop" leaves it out. An unknown mode drops: a
// typo must not leak what the operator meant to hide (New rejects unknown
// modes before they get here).
func Redact(mode, callID string) (string, bool) {
	switch mode {
	case RedactNone, "":
		return callID, true
	case RedactHash:
		h := hashCallID(callID)
		return string(h[:]), true
	default:
		return "", false
	}
}

const hashPrefix = "sha256:"

// hashCallID is the "hash" redaction of a Call-ID, in an array so that the
// encoder can write it without making a string.
func hashCallID(callID string) [len(hashPrefix) + 16]byte {
	sum := sha256.Sum256([]byte(callID))
	var out [len(hashPrefix) + 16]byte
	copy(out[:], hashPrefix)
	hex.Encode(out[len(hashPrefix):], sum[:8])
	return out
}
