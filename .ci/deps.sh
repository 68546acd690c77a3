#!/usr/bin/env bash
# Installs the real peers sipvigil's tests drive, if they are missing:
# SIPp (Debian package sip-tester), clang/libbpf for the eBPF code check,
# and Prometheus. Idempotent, and quiet when everything is present.
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
# prometheus: promtool checks the shipped alert rules, and the end-to-end
# metrics test scrapes the proxy with a real Prometheus (2.42 on Debian
# 12). The package starts no service where PID 1 is not systemd; the test
# runs its own instance on a loopback port.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)

if [ ${#need[@]} -gt 0 ]; then
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		SUDO="sudo"
	fi
	echo "installing: ${need[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
