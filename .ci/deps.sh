#!/usr/bin/env bash
# Installs the real peers sipvigil's tests drive, if they are missing:
# SIPp (Debian package sip-tester) and clang/libbpf for the eBPF code
# check. Idempotent, and quiet when everything is present.
set -euo pipefail

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# clang/llvm and libbpf-dev: make check-generated rebuilds bpf/sipcap.c
# and fails when the committed bpf2go output is stale. bpftool: reading
# the programs' run_time_ns in the eBPF benchmark.
command -v clang >/dev/null 2>&1 || need+=(clang llvm)
[ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
command -v bpftool >/dev/null 2>&1 || need+=(bpftool)

if [ ${#need[@]} -gt 0 ]; then
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		SUDO="sudo"
	fi
	echo "installing: ${need[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
