package bpf

// Regenerate sipcap_bpfel.{go,o} after editing sipcap.c (needs clang and
// llvm-strip; the result is committed so `go build` needs neither). Use the
// same clang major as the committed object, see check_generated.sh.
//
//go:generate go tool bpf2go -tags linux -target bpfel -type event -type counters sipcap sipcap.c -- -I./headers -O2 -g -Wall -Werror
