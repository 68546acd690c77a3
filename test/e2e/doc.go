// Package e2e holds end-to-end tests that drive real SIPp UAC and UAS
// processes through the sipvigil binary on loopback (127.0.0.1 and ::1),
// over UDP and TCP.
//
// Run with:
//
//	go test ./test/e2e/            # needs sipp on PATH (Debian: sip-tester)
//	go test -v -run Direct ./test/e2e/   # scenario self-checks, no proxy
//
// Without sipp the tests skip, unless CI=true, where TestMain fails hard.
// The SIPp scenarios live in testdata/; neg_*.xml are negative controls that
// are only ever run directly (UAC to UAS) to prove the scenarios detect the
// misbehaviour the proxy tests look for.
package e2e
