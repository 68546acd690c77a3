#!/usr/bin/env bash
# bench/trace.sh: what tracing every call costs sipvigil in capacity, in one run.
#
#   1. bench/capacity.sh --ebpf on --tracing off  (capacity search, tracing: {enabled: false})
#   2. bench/capacity.sh --ebpf on --tracing on   (same parameters: sample_ratio 1.0, spans
#      over OTLP/HTTP to bench/otlpsink, a do-nothing receiver on 127.0.0.1)
#      -> both max rates, ratio on/off against --min-ratio (0.90), and the
#         spans dropped in the best passing tracing-on trial (must be 0):
#         spans_dropped = spans_export_failed + spans_queue_dropped + evidence_dropped, from the
#         proxy's shutdown "tracing stats" / "evidence stats" lines.
#
# eBPF is on in both searches (kernel timestamps are part of what a trace
# carries), so the ratio isolates tracing. Exit 0 = PASS, 1 = FAIL (ratio,
# spans dropped, or no passing trial), 2 = could not measure.
# --netns: both searches with capacity.sh --netns (SIPp in a namespace, proxy
# on a veth).  Needs root (ebpf.mode on attaches TC programs).  See bench/README.md.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

DURATION=10
START_RATE=2000
MAX_RATE=8000
RESOLUTION=100
MAX_TRIALS=25
MIN_RATIO=0.90
NETNS=0             # --netns (or --netns after --): capacity.sh --netns for every run
EXTRA=()            # after --: passed to both capacity.sh calls

usage() {
	cat <<EOF
usage: bench/trace.sh [options] [-- capacity.sh options]
  --duration S          seconds of load per trial (default: $DURATION)
  --start RATE          first rate of the ramp, cps (default: $START_RATE)
  --max RATE            never try above this rate, cps (default: $MAX_RATE)
  --resolution CPS      bisection resolution (default: $RESOLUTION)
  --max-trials N        per capacity search (default: $MAX_TRIALS)
  --min-ratio F         pass when max_rate(on)/max_rate(off) >= F (default: $MIN_RATIO)
  --netns               SIPp in a network namespace, proxy on a veth (capacity.sh --netns): the
                        proxy's eBPF programs see each datagram once, as on a NIC, not twice (lo)
  --keep                keep capacity.sh's temp dirs (proxy/SIPp/otlpsink logs)
  -- ARGS               extra capacity.sh options for both runs (e.g. --scenario reinvite)
EOF
}

while (($#)); do
	case $1 in
	--duration) DURATION=${2:?}; shift 2 ;;
	--start) START_RATE=${2:?}; shift 2 ;;
	--max) MAX_RATE=${2:?}; shift 2 ;;
	--resolution) RESOLUTION=${2:?}; shift 2 ;;
	--max-trials) MAX_TRIALS=${2:?}; shift 2 ;;
	--min-ratio) MIN_RATIO=${2:?}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--netns) NETNS=1; shift ;;
	--) shift; EXTRA=("$@"); break ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" ;;
	esac
done
for v in DURATION START_RATE MAX_RATE RESOLUTION MAX_TRIALS; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]] || ((${!v} == 0)); then die "$v must be a positive integer, got '${!v}'"; fi
done
((START_RATE <= MAX_RATE)) || die "--start must be <= --max"
[[ $MIN_RATIO =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--min-ratio must be a number"
((EUID == 0)) || die "needs root: both searches run with ebpf.mode on (TC programs on lo)"
need_cmd tail
ensure_sipvigil
sipvigil_require_ebpf
sipvigil_require_tracing
ensure_otlpsink

compare_init trace

common=(--proxy sipvigil --ebpf on --duration "$DURATION" --start "$START_RATE" --max "$MAX_RATE"
	--resolution "$RESOLUTION" --max-trials "$MAX_TRIALS")

out "# sipvigil tracing on/off capacity $(date -u +%Y-%m-%dT%H:%M:%SZ)"
out "# host: $(uname -srm), $(nproc) cpus, loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
out "# capacity.sh ${common[*]}${EXTRA[*]:+ ${EXTRA[*]}}, --tracing off then --tracing on (sample_ratio 1.0, OTLP/HTTP to bench/otlpsink); min ratio $MIN_RATIO"
if ((NETNS)); then
	out "# netns: on (veth, SIPp in svbench-PID, proxy on svb0-PID 10.250.X.1: a fresh namespace per capacity.sh run, named in its header and below)"
else
	out "# netns: off (SIPp and proxy on 127.0.0.1, lo)"
fi

run_capacity off "${common[@]}" --tracing off
((CAP_RC <= 1)) || die "capacity.sh --tracing off failed (exit $CAP_RC)"
OFF_RATE=$(field max_rate "$TMPD/off.out")
OFF_CPU=$(field cpu_per_1000_calls "$TMPD/off.out")
OFF_CAPPED=$(field capped_by_max "$TMPD/off.out")
OFF_RING=$(field ring_drops "$TMPD/off.out")

run_capacity on "${common[@]}" --tracing on
((CAP_RC <= 1)) || die "capacity.sh --tracing on failed (exit $CAP_RC)"
ON_RATE=$(field max_rate "$TMPD/on.out")
ON_CPU=$(field cpu_per_1000_calls "$TMPD/on.out")
ON_CAPPED=$(field capped_by_max "$TMPD/on.out")
ON_RING=$(field ring_drops "$TMPD/on.out")
ON_DROPPED=$(field spans_dropped "$TMPD/on.out")
ON_TRACING=$(grep '^TRACING ' "$TMPD/on.out" | tail -n1 || true)

[[ $OFF_RATE =~ ^[0-9]+$ && $ON_RATE =~ ^[0-9]+$ ]] || die "no max_rate in the capacity reports (off='$OFF_RATE' on='$ON_RATE')"

VERDICT=PASS
why=()
RATIO=na
if ((OFF_RATE > 0)); then
	RATIO=$(awk -v a="$ON_RATE" -v b="$OFF_RATE" 'BEGIN { printf "%.3f", a / b }')
	awk -v r="$RATIO" -v m="$MIN_RATIO" 'BEGIN { exit !(r >= m) }' || why+=("ratio<$MIN_RATIO")
else
	why+=("no-passing-trial-with-tracing-off")
fi
((ON_RATE > 0)) || why+=("no-passing-trial-with-tracing-on")
[[ ${ON_DROPPED:-na} == 0 ]] || why+=("spans_dropped=${ON_DROPPED:-na}")
((${#why[@]})) && VERDICT=FAIL

out ""
out "CAPACITY tracing=off max_rate=$OFF_RATE cps cpu_per_1000_calls=${OFF_CPU:-na} s${OFF_CAPPED:+ capped_by_max=$OFF_CAPPED} ring_drops=${OFF_RING:-na}"
out "CAPACITY tracing=on  max_rate=$ON_RATE cps cpu_per_1000_calls=${ON_CPU:-na} s${ON_CAPPED:+ capped_by_max=$ON_CAPPED} ring_drops=${ON_RING:-na} spans_dropped=${ON_DROPPED:-na}"
[[ -n $ON_TRACING ]] && out "$ON_TRACING"
if [[ ${OFF_CPU:-na} =~ ^[0-9.]+$ && ${ON_CPU:-na} =~ ^[0-9.]+$ ]] && awk -v o="$OFF_CPU" 'BEGIN { exit !(o > 0) }'; then
	out "CPUCOST cpu_per_1000_calls on/off=$(fcalc "$ON_CPU / $OFF_CPU") (on-off=$(fcalc "$ON_CPU - $OFF_CPU") s; each at its own capacity rate: $ON_RATE vs $OFF_RATE cps)"
fi
if [[ -n $OFF_CAPPED || -n $ON_CAPPED ]]; then
	out "NOTE: a search was capped by --max ($MAX_RATE): that capacity is only a lower bound; raise --max for a meaningful ratio"
fi
if [[ ${OFF_RING:-0} != 0 || ${ON_RING:-0} != 0 ]]; then
	out "NOTE: eBPF ring drops at a capacity (off=${OFF_RING:-na} on=${ON_RING:-na}): those messages fell back to user-space timestamps (msgs_user)"
fi
if grep -q 'foreign-sipcap-progs' "$TMPD/off.out" "$TMPD/on.out"; then
	if ((NETNS)); then
		out "NOTE: another process's sipcap programs (e.g. e2e tests with eBPF) were loaded during some trials: not on this run's veth (they did not run on its packets), but they compete for the CPU"
	else
		out "NOTE: another process's sipcap programs (e.g. e2e tests with eBPF) were loaded during some trials: they ran on these lo packets too"
	fi
fi
ratio_line="RATIO on/off=$RATIO min=$MIN_RATIO spans_dropped_at_on_capacity=${ON_DROPPED:-na} => $VERDICT"
((${#why[@]})) && ratio_line+=" why=$(IFS=,; echo "${why[*]}")"
out "$ratio_line"

out ""
out "VERDICT $VERDICT tracing_off=$OFF_RATE tracing_on=$ON_RATE ratio=$RATIO (min $MIN_RATIO) spans_dropped=${ON_DROPPED:-na} netns=$( ((NETNS)) && echo on || echo off)"
out "NOTE: single capacity searches on 2 shared cores; one bisection step at --resolution $RESOLUTION is $(awk -v r="$RESOLUTION" -v o="$OFF_RATE" 'BEGIN { if (o > 0) printf "%.1f", r / o * 100; else print "?" }')% of the off rate: repeat the run before trusting a ratio near $MIN_RATIO."
out "# results: $RESULT_FILE"
[[ $VERDICT == PASS ]] || exit 1
exit 0
