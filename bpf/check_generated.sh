#!/usr/bin/env bash
# Verify that the committed sipcap_bpfel.{go,o} match sipcap.c, gen.go and
# headers/: regenerate into a temp dir with the exact bpf2go command from
# gen.go and diff.
#
# The .go file must match exactly. The .o is compared only when the local
# clang has the major version the committed object was built with
# (EXPECTED_CLANG_MAJOR): other clang releases emit different (equally
# valid) code, so a mismatch there says nothing. STRICT=1 makes a clang
# version mismatch an error instead of a skip. Without clang the check is
# skipped (exit 0) unless STRICT=1.
#
# Usage: bpf/check_generated.sh   (from anywhere; CI runs it when clang exists)
set -euo pipefail

EXPECTED_CLANG_MAJOR=14

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
cc=${BPF2GO_CC:-clang}

if ! command -v "$cc" >/dev/null; then
	echo "check_generated: $cc not found, skipping" >&2
	[[ ${STRICT:-0} == 1 ]] && exit 1
	exit 0
fi
major=$("$cc" -dumpversion | cut -d. -f1)

# The one //go:generate line in gen.go, minus the directive prefix.
gen=$(sed -n 's|^//go:generate go tool bpf2go ||p' gen.go)
[[ -n $gen ]] || { echo "check_generated: no bpf2go line in gen.go" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# -output-dir must precede the positional arguments; word splitting of $gen
# is intended (it holds no quoted arguments).
# shellcheck disable=SC2086
GOPACKAGE=bpf go tool bpf2go -output-dir "$tmp" $gen >"$tmp/bpf2go.log" 2>&1 || {
	cat "$tmp/bpf2go.log" >&2
	exit 1
}

status=0
if ! diff -u sipcap_bpfel.go "$tmp/sipcap_bpfel.go"; then
	echo "check_generated: sipcap_bpfel.go is stale, run: go generate ./bpf/" >&2
	status=1
fi
if [[ $major == "$EXPECTED_CLANG_MAJOR" ]]; then
	if ! cmp -s sipcap_bpfel.o "$tmp/sipcap_bpfel.o"; then
		echo "check_generated: sipcap_bpfel.o differs from a clang-$major rebuild, run: go generate ./bpf/" >&2
		status=1
	fi
else
	echo "check_generated: clang $major != $EXPECTED_CLANG_MAJOR, .o not compared" >&2
	[[ ${STRICT:-0} == 1 ]] && status=1
fi
[[ $status == 0 ]] && echo "check_generated: sipcap_bpfel.go and .o up to date (clang $major)"
exit $status
