package tracing

import (
	"crypto/sha256"
	"encoding/hex"

	"go.opentelemetry.io/otel/trace"

	"sipvigil/telemetry/evidence"
)

// TraceID derives the trace ID of a call from its Call-ID
// (evidence.TraceID: docs/tracing.md, "Trace identity").
func TraceID(callID string) trace.TraceID { return trace.TraceID(evidence.TraceID(callID)) }

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
