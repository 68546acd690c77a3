#!/usr/bin/env bash
# staircase-pool.sh: pool several `ebpf.sh --staircase N` runs.
#
# usage: bench/staircase-pool.sh RESULTS_FILE...
#
# One staircase run on 2 shared cores moves by about ±0.06 with host drift
# (bench/README.md, "eBPF"), so a verdict near the 0.95 bar needs several.
# This reads the STEP lines of each ebpf.sh summary file
# (bench/results/sipvigil-ebpf-*.txt) and applies ebpf.sh's own estimator:
# a mode's capacity is the mean rate of its trials from its first reversal
# on (a STEP line whose reversals= is at least 1). For each run it prints
# that run's capacities and ratio; then, per netns mode, the pooled figures:
#
#   POOLED netns=off runs=3 off=4,979 on=4,843 ratio=0.973 run_ratios=[...]
#          mean_run_ratio=0.97 se=0.03 ring_drops=0
#
# `off` and `on` pool every fine trial of every run (each trial weighs the
# same); `mean_run_ratio` and `se` (its standard error, sd/sqrt(runs)) show
# how far the runs agree. ring_drops is the worst numeric ring_drops of any
# passing eBPF-on trial (a failed trial's proxy rarely logs it: na).
#
# A file without a staircase that reversed in both modes (a --repeat run,
# an interrupted one) is skipped with a SKIP line on stderr. Give it the
# runs to pool, made with the same parameters: a short smoke staircase
# (--staircase 6) is a run like any other to it. It reads files only: no
# root, no network.
# Exit 2 when no file holds a usable staircase.
set -euo pipefail

(($# > 0)) || {
	echo "usage: bench/staircase-pool.sh RESULTS_FILE... (ebpf.sh --staircase summaries, bench/results/sipvigil-ebpf-*.txt)" >&2
	exit 2
}

for f in "$@"; do
	[[ -r $f ]] || {
		echo "staircase-pool.sh: cannot read $f" >&2
		exit 2
	}
done

awk '
function fail(msg) { print "staircase-pool.sh: " msg > "/dev/stderr"; bad = 1; exit 2 }
function run_end(   r) {
	if (cur == "") return
	if (n[cur, "off"] == 0 || n[cur, "on"] == 0) {
		print "SKIP " cur ": no staircase with a reversal in both modes (STEP lines from ebpf.sh --staircase)" > "/dev/stderr"
		return
	}
	if ((cur in wd) && (!(ns[cur] in worst) || wd[cur] > worst[ns[cur]])) worst[ns[cur]] = wd[cur]
	r = (s[cur, "on"] / n[cur, "on"]) / (s[cur, "off"] / n[cur, "off"])
	ratio[cur] = r
	printf "RUN %s netns=%s off=%.0f (%d fine) on=%.0f (%d fine) ratio=%.3f%s\n", \
		cur, ns[cur], s[cur, "off"] / n[cur, "off"], n[cur, "off"], \
		s[cur, "on"] / n[cur, "on"], n[cur, "on"], r, \
		(commit[cur] != "" ? " commit=" commit[cur] : "")
	runs[ns[cur]] = runs[ns[cur]] " " cur
}
FNR == 1 { run_end(); cur = FILENAME; ns[FILENAME] = "off" }
/^# netns: on/ { ns[FILENAME] = "on" }
/^# sipvigil commit: / { commit[FILENAME] = $4 }
/^STEP / {
	mode = ""; rate = ""; rev = ""; drops = ""
	for (i = 3; i <= NF; i++) {
		split($i, kv, "=")
		if (kv[1] == "ebpf") mode = kv[2]
		else if (kv[1] == "rate") rate = kv[2]
		else if (kv[1] == "reversals") rev = kv[2]
		else if (kv[1] == "ring_drops") drops = kv[2]
	}
	if (mode == "" || rate == "" || rev == "") fail(FILENAME ": unreadable STEP line: " $0)
	if (rev >= 1) { s[FILENAME, mode] += rate; n[FILENAME, mode]++ }
	if (mode == "on" && $5 == "PASS" && drops ~ /^[0-9]+$/ && (!(FILENAME in wd) || drops + 0 > wd[FILENAME]))
		wd[FILENAME] = drops + 0
}
END {
	if (bad) exit 2
	run_end()
	if (length(runs) == 0) fail("no usable staircase run in the files given")
	for (m in runs) {
		k = split(substr(runs[m], 2), fs, " ")
		so = no = son = non = 0; list = ""; sum = sumsq = 0
		for (j = 1; j <= k; j++) {
			f = fs[j]
			so += s[f, "off"]; no += n[f, "off"]; son += s[f, "on"]; non += n[f, "on"]
			list = list (j > 1 ? " " : "") sprintf("%.3f", ratio[f])
			sum += ratio[f]; sumsq += ratio[f] * ratio[f]
		}
		mean = sum / k
		se = "na"
		if (k > 1) {
			v = (sumsq - k * mean * mean) / (k - 1)
			se = sprintf("%.3f", (v > 0 ? sqrt(v / k) : 0))
		}
		printf "POOLED netns=%s runs=%d off=%.0f on=%.0f ratio=%.3f run_ratios=[%s] mean_run_ratio=%.3f se=%s ring_drops=%s\n", \
			m, k, so / no, son / non, (son / non) / (so / no), list, mean, se, (m in worst ? worst[m] : "na")
	}
}
' "$@"
