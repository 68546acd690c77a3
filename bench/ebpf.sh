#!/usr/bin/env bash
# bench/ebpf.sh: what the eBPF capture costs sipvigil, in one run.
#
#   1. bench/capacity.sh --ebpf off   (capacity search, no BPF programs attached)
#   2. bench/capacity.sh --ebpf on    (same parameters: TC capture on lo, or
#      with --netns on the veth of a namespace holding SIPp: one hook per datagram)
#      -> both max rates, ratio on/off against --min-ratio (0.95), and the
#         ring-buffer drops of the best passing eBPF-on trial (must be 0)
#      With --repeat N, N such pairs, the order alternating (off,on), (on,off),
#      ... so that drift on the host hits both sides; the verdict uses the
#      median capacity of each side (one collapse in a 10 s trial, which on 2
#      shared cores can happen at any rate near the limit, moves one search
#      by 10-15 %, not the median).
#      With --staircase N instead: N fixed-rate trials per mode, off and on
#      interleaved trial by trial (off,on), (on,off), ..., each mode on its own
#      1-up-1-down staircase (a pass raises that mode's next rate, a fail
#      lowers it: coarse steps of 4x --resolution until the first reversal,
#      then --resolution).  A staircase converges on the rate a trial passes
#      at half the time, the same point a bisection estimates, but it spends
#      every trial near that point and the interleaving puts host drift
#      (which on this shared VM moves the CPU per call by ~10 % between
#      consecutive trials) on both sides equally.  The capacity of a mode is
#      the mean rate of its trials from the first reversal on.
#   3. one fixed-rate trial at the eBPF-on capacity with
#      kernel.bpf_stats_enabled=1 (previous value restored on exit): run_cnt
#      and run_time_ns of the proxy's programs (sipcap_ingress,
#      sipcap_egress; bpftool -j prog show) over the UAC run, ns per run,
#      and the BPF CPU seconds next to the proxy's CPU seconds.
#
# Exit 0 = PASS, 1 = FAIL (ratio or ring drops), 2 = could not measure.
# Needs root (TC attach, sysctl, bpftool).  See bench/README.md.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

DURATION=10
START_RATE=2000
MAX_RATE=8000
RESOLUTION=100
MAX_TRIALS=25
MIN_RATIO=0.95
REPEAT=1            # --repeat N: N off/on pairs, medians
STAIRCASE=0         # --staircase N: N interleaved fixed-rate trials per mode instead of searches
START_SET=0
STATS_DURATION=""   # fixed-rate trial length (default: --duration)
PROG_STATS=1
NETNS=0             # --netns (or --netns after --): capacity.sh --netns for every run
EXTRA=()            # after --: passed to every capacity.sh call

usage() {
	cat <<EOF
usage: bench/ebpf.sh [options] [-- capacity.sh options]
  --duration S          seconds of load per trial (default: $DURATION)
  --start RATE          first rate of the ramp, cps (default: $START_RATE)
  --max RATE            never try above this rate, cps (default: $MAX_RATE)
  --resolution CPS      bisection resolution (default: $RESOLUTION)
  --max-trials N        per capacity search (default: $MAX_TRIALS)
  --min-ratio F         pass when max_rate(on)/max_rate(off) >= F (default: $MIN_RATIO)
  --repeat N            N off/on search pairs in alternating order; the ratio is
                        median(on)/median(off) (default: $REPEAT)
  --staircase N         instead of searches: N fixed-rate trials per mode, off and on
                        interleaved, each on a 1-up-1-down staircase starting at --start
                        (default 4000 here); capacity = mean rate from the first reversal on
  --stats-duration S    length of the fixed-rate bpf_stats trial (default: --duration)
  --no-prog-stats       skip the fixed-rate bpf_stats trial
  --netns               SIPp in a network namespace, proxy on a veth (capacity.sh --netns): the
                        proxy's eBPF programs see each datagram once, as on a NIC, not twice (lo)
  --keep                keep capacity.sh's temp dirs (proxy/SIPp logs)
  -- ARGS               extra capacity.sh options for all three runs (e.g. --scenario reinvite)
EOF
}

while (($#)); do
	case $1 in
	--duration) DURATION=${2:?}; shift 2 ;;
	--start) START_RATE=${2:?}; START_SET=1; shift 2 ;;
	--max) MAX_RATE=${2:?}; shift 2 ;;
	--resolution) RESOLUTION=${2:?}; shift 2 ;;
	--max-trials) MAX_TRIALS=${2:?}; shift 2 ;;
	--min-ratio) MIN_RATIO=${2:?}; shift 2 ;;
	--repeat) REPEAT=${2:?}; shift 2 ;;
	--staircase) STAIRCASE=${2:?}; shift 2 ;;
	--stats-duration) STATS_DURATION=${2:?}; shift 2 ;;
	--no-prog-stats) PROG_STATS=0; shift ;;
	--keep) KEEP=1; shift ;;
	--netns) NETNS=1; shift ;;
	--) shift; EXTRA=("$@"); break ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" ;;
	esac
done
STATS_DURATION=${STATS_DURATION:-$DURATION}
if [[ $STAIRCASE != 0 ]] && ((!START_SET)); then START_RATE=4000; fi
[[ $STAIRCASE =~ ^[0-9]+$ ]] || die "--staircase must be a number of trials, got '$STAIRCASE'"
((STAIRCASE == 0 || STAIRCASE >= 6)) || die "--staircase needs at least 6 trials per mode"
for v in DURATION START_RATE MAX_RATE RESOLUTION MAX_TRIALS STATS_DURATION REPEAT; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]] || ((${!v} == 0)); then die "$v must be a positive integer, got '${!v}'"; fi
done
[[ $MIN_RATIO =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--min-ratio must be a number"
((EUID == 0)) || die "needs root: ebpf.mode on attaches TC programs, and the bpf_stats trial writes a sysctl"
need_cmd bpftool sysctl tail
ensure_sipvigil
sipvigil_require_ebpf

compare_init ebpf
STATS_PREV=""   # kernel.bpf_stats_enabled before we set it (restored on exit)

restore_bpf_stats() {
	if [[ -n $STATS_PREV ]]; then
		if sysctl -q -w "kernel.bpf_stats_enabled=$STATS_PREV" >/dev/null 2>&1; then
			log "kernel.bpf_stats_enabled restored to $STATS_PREV"
		else
			log "WARNING: could not restore kernel.bpf_stats_enabled=$STATS_PREV"
		fi
		STATS_PREV=""
	fi
}

# shellcheck disable=SC2317  # called by compare_cleanup
compare_on_exit() { restore_bpf_stats; }

common=(--proxy sipvigil --duration "$DURATION" --start "$START_RATE" --max "$MAX_RATE"
	--resolution "$RESOLUTION" --max-trials "$MAX_TRIALS")

out "# sipvigil eBPF on/off capacity $(date -u +%Y-%m-%dT%H:%M:%SZ)"
out "# host: $(uname -srm), $(nproc) cpus, loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# the commit the proxy binary was built from, for staircase-pool.sh
out "# sipvigil commit: $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO_DIR" diff --quiet -- . ':!bench' 2>/dev/null || echo '+dirty')"
if ((STAIRCASE)); then
	out "# capacity.sh --proxy sipvigil --duration $DURATION --rate R${EXTRA[*]:+ ${EXTRA[*]}}: staircase, $STAIRCASE trials per mode interleaved, start $START_RATE, steps $((4 * RESOLUTION)) then $RESOLUTION cps; min ratio $MIN_RATIO"
else
	out "# capacity.sh ${common[*]}${EXTRA[*]:+ ${EXTRA[*]}}, --ebpf off then --ebpf on; min ratio $MIN_RATIO; pairs $REPEAT"
fi
if ((NETNS)); then
	out "# netns: on (veth, SIPp in svbench-PID, proxy on svb0-PID 10.250.X.1: a fresh namespace per capacity.sh run, named in its header and below; the programs run once per datagram)"
else
	out "# netns: off (SIPp and proxy on 127.0.0.1: the programs run twice per datagram on lo, egress + ingress)"
fi

# search MODE PAIR: one capacity search; its report is $TMPD/MODE$PAIR.out
search() {
	run_capacity "$1$2" "${common[@]}" --ebpf "$1"
	((CAP_RC <= 1)) || die "capacity.sh --ebpf $1 (pair $2) failed (exit $CAP_RC)"
	local rate
	rate=$(field max_rate "$TMPD/$1$2.out")
	[[ $rate =~ ^[0-9]+$ ]] || die "no max_rate in the capacity report of --ebpf $1 (pair $2): '$rate'"
}

# median N...: the middle value (the lower middle for an even count)
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

search_pairs() {
	off_rates=() on_rates=()
	local pair mode order d
	for ((pair = 1; pair <= REPEAT; pair++)); do
		if ((pair % 2)); then order=(off on); else order=(on off); fi
		for mode in "${order[@]}"; do search "$mode" "$pair"; done
		off_rates+=("$(field max_rate "$TMPD/off$pair.out")")
		on_rates+=("$(field max_rate "$TMPD/on$pair.out")")
		if ((REPEAT > 1)); then
			out "PAIR $pair order=${order[0]},${order[1]} ebpf_off=${off_rates[-1]} ebpf_on=${on_rates[-1]} ratio=$(awk -v a="${on_rates[-1]}" -v b="${off_rates[-1]}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "na" }') ring_drops=$(field ring_drops "$TMPD/on$pair.out")"
		fi
	done
	OFF_RATE=$(median "${off_rates[@]}")
	ON_RATE=$(median "${on_rates[@]}")
	# the reports of the searches that gave the medians
	for ((pair = 1; pair <= REPEAT; pair++)); do
		if [[ ${off_rates[pair - 1]} == "$OFF_RATE" ]]; then OFF_OUT=$TMPD/off$pair.out; break; fi
	done
	for ((pair = 1; pair <= REPEAT; pair++)); do
		if [[ ${on_rates[pair - 1]} == "$ON_RATE" ]]; then ON_OUT=$TMPD/on$pair.out; break; fi
	done
	OFF_CPU=$(field cpu_per_1000_calls "$OFF_OUT")
	OFF_CAPPED=$(field capped_by_max "$OFF_OUT")
	ON_CPU=$(field cpu_per_1000_calls "$ON_OUT")
	ON_CAPPED=$(field capped_by_max "$ON_OUT")
	# ring drops: the worst of every eBPF-on search at its own capacity
	ON_DROPS=0
	for ((pair = 1; pair <= REPEAT; pair++)); do
		d=$(field ring_drops "$TMPD/on$pair.out")
		if ! [[ $d =~ ^[0-9]+$ ]]; then ON_DROPS=na; break; fi
		if ((d > ON_DROPS)); then ON_DROPS=$d; fi
	done
}

# staircase: STAIRCASE fixed-rate trials per mode, interleaved (see the
# header); sets what search_pairs sets, from the trials' own lines.
STAIR_LINE=()
staircase() {
	local -A rate step last rev sum sumsq n pass cpu_sum capped
	local i mode order verdict dir f d c next
	for mode in off on; do
		rate[$mode]=$START_RATE step[$mode]=$((4 * RESOLUTION)) last[$mode]=0 rev[$mode]=0
		sum[$mode]=0 sumsq[$mode]=0 n[$mode]=0 pass[$mode]=0 cpu_sum[$mode]=0 capped[$mode]=""
	done
	ON_DROPS=0 OFF_OUT="" ON_OUT=""
	for ((i = 1; i <= STAIRCASE; i++)); do
		if ((i % 2)); then order=(off on); else order=(on off); fi
		for mode in "${order[@]}"; do
			f=$TMPD/$mode-t$i.out
			run_capacity "$mode-t$i" --proxy sipvigil --ebpf "$mode" --rate "${rate[$mode]}" --duration "$DURATION"
			((CAP_RC <= 1)) || die "capacity.sh --ebpf $mode --rate ${rate[$mode]} (trial $i) failed (exit $CAP_RC)"
			verdict=$(awk '/^TRIAL / { v = $4 } END { print v }' "$f")
			case $verdict in
			PASS) dir=1 ;;
			FAIL) dir=-1 ;;
			*) die "no trial verdict in the report of --ebpf $mode trial $i ($f)" ;;
			esac
			# the fine phase starts with the trial that first reverses the direction
			if ((last[$mode] != 0 && dir != last[$mode])); then
				((++rev[$mode]))
				step[$mode]=$RESOLUTION
			fi
			last[$mode]=$dir
			if ((rev[$mode] > 0)); then
				((sum[$mode] += rate[$mode], sumsq[$mode] += rate[$mode] * rate[$mode], ++n[$mode]))
			fi
			if ((dir > 0)); then
				((++pass[$mode]))
				# a pass at --max: the staircase cannot go higher, the estimate is a lower bound
				((rate[$mode] < MAX_RATE)) || capped[$mode]=$MAX_RATE
				c=$(field cpu_per_1000_calls "$f" 'TRIAL ')
				cpu_sum[$mode]=$(awk -v a="${cpu_sum[$mode]}" -v b="${c:-0}" 'BEGIN { print a + b }')
				if [[ $mode == on ]]; then
					ON_OUT=$f
					d=$(field ring_drops "$f" 'TRIAL ')
					if ! [[ $d =~ ^[0-9]+$ ]]; then
						ON_DROPS=na
					elif [[ $ON_DROPS != na ]] && ((d > ON_DROPS)); then
						ON_DROPS=$d
					fi
				else
					OFF_OUT=$f
				fi
			fi
			next=$((rate[$mode] + dir * step[$mode]))
			((next >= RESOLUTION)) || next=$RESOLUTION
			((next <= MAX_RATE)) || next=$MAX_RATE
			d=""
			if [[ $mode == on ]]; then
				# a failed trial's proxy is often killed before it logs its ebpf stats
				d=$(field ring_drops "$f" 'TRIAL ')
				d=" ring_drops=${d:-na}"
			fi
			out "STEP $i ebpf=$mode rate=${rate[$mode]} $verdict reversals=${rev[$mode]} next=$next$d"
			rate[$mode]=$next
		done
	done
	for mode in off on; do
		local cap=0 sd=na cpu=na
		if ((n[$mode] > 0)); then
			cap=$(((sum[$mode] + n[$mode] / 2) / n[$mode]))
			sd=$(awk -v s="${sum[$mode]}" -v q="${sumsq[$mode]}" -v n="${n[$mode]}" 'BEGIN { m = s / n; v = q / n - m * m; printf "%.0f", (v > 0 ? sqrt(v) : 0) }')
		fi
		((pass[$mode] > 0)) && cpu=$(awk -v s="${cpu_sum[$mode]}" -v n="${pass[$mode]}" 'BEGIN { printf "%.3f", s / n }')
		STAIR_LINE+=("STAIRCASE ebpf=$mode capacity=$cap cps trials=$STAIRCASE fine_trials=${n[$mode]} sd=$sd passed=${pass[$mode]} reversals=${rev[$mode]} cpu_per_1000_calls(passing)=$cpu")
		if [[ $mode == off ]]; then OFF_RATE=$cap OFF_CPU=$cpu; else ON_RATE=$cap ON_CPU=$cpu; fi
	done
	OFF_CAPPED=${capped[off]} ON_CAPPED=${capped[on]}
}

if ((STAIRCASE)); then staircase; else search_pairs; fi
ON_EBPF=""
[[ -n $ON_OUT ]] && ON_EBPF=$(grep '^EBPF ' "$ON_OUT" | tail -n1 || true)

VERDICT=PASS
why=()
RATIO=na
if ((OFF_RATE > 0)); then
	RATIO=$(awk -v a="$ON_RATE" -v b="$OFF_RATE" 'BEGIN { printf "%.3f", a / b }')
	awk -v r="$RATIO" -v m="$MIN_RATIO" 'BEGIN { exit !(r >= m) }' || why+=("ratio<$MIN_RATIO")
else
	why+=("no-passing-trial-with-ebpf-off")
fi
((ON_RATE > 0)) || why+=("no-passing-trial-with-ebpf-on")
[[ ${ON_DROPS:-na} == 0 ]] || why+=("ring_drops=${ON_DROPS:-na}")
((${#why[@]})) && VERDICT=FAIL

out ""
((REPEAT > 1 && !STAIRCASE)) && out "MEDIANS of $REPEAT pairs: ebpf_off=[${off_rates[*]}] ebpf_on=[${on_rates[*]}]"
for line in "${STAIR_LINE[@]}"; do out "$line"; done
out "CAPACITY ebpf=off max_rate=$OFF_RATE cps cpu_per_1000_calls=${OFF_CPU:-na} s${OFF_CAPPED:+ capped_by_max=$OFF_CAPPED}"
out "CAPACITY ebpf=on  max_rate=$ON_RATE cps cpu_per_1000_calls=${ON_CPU:-na} s${ON_CAPPED:+ capped_by_max=$ON_CAPPED} ring_drops=${ON_DROPS:-na}"
[[ -n $ON_EBPF ]] && out "$ON_EBPF"
if [[ -n $OFF_CAPPED || -n $ON_CAPPED ]]; then
	out "NOTE: a search was capped by --max ($MAX_RATE): that capacity is only a lower bound; raise --max for a meaningful ratio"
fi
if grep -q 'foreign-sipcap-progs' "$TMPD"/off*.out "$TMPD"/on*.out; then
	if ((NETNS)); then
		out "NOTE: another process's sipcap programs (e.g. e2e tests with eBPF) were loaded during some trials: not on this run's veth, so they did not run on its packets, but they compete for the CPU"
	else
		out "NOTE: another process's sipcap programs (e.g. e2e tests with eBPF) were loaded during some trials: they ran on these lo packets too, so the off side was not BPF-free"
	fi
fi
ratio_line="RATIO on/off=$RATIO min=$MIN_RATIO ring_drops_at_on_capacity=${ON_DROPS:-na} => $VERDICT"
((${#why[@]})) && ratio_line+=" why=$(IFS=,; echo "${why[*]}")"
out "$ratio_line"

# ---------------------------------------------------------------- BPF CPU per packet

if ((PROG_STATS)) && ((ON_RATE > 0)); then
	out ""
	STATS_OK=0
	prev=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || true)
	if [[ -z $prev ]]; then
		out "BPFSTATS unavailable: kernel.bpf_stats_enabled does not exist on this kernel; no run_time_ns"
	elif [[ $prev == 1 ]]; then
		STATS_OK=1
		out "# kernel.bpf_stats_enabled was already 1 (left as it is)"
	else
		STATS_PREV=$prev
		if sysctl -q -w kernel.bpf_stats_enabled=1 >/dev/null 2>&1 && [[ $(sysctl -n kernel.bpf_stats_enabled) == 1 ]]; then
			STATS_OK=1
			log "kernel.bpf_stats_enabled=1 (was $prev) for the fixed-rate trial"
		else
			out "BPFSTATS unavailable: could not set kernel.bpf_stats_enabled=1 (read-only /proc/sys? not root in the init namespace?)"
			STATS_PREV=""
		fi
	fi
	if ((STATS_OK)); then
		run_capacity stats --proxy sipvigil --ebpf on --rate "$ON_RATE" --duration "$STATS_DURATION" --bpf-prog-stats
		restore_bpf_stats
		((CAP_RC <= 1)) || die "fixed-rate capacity.sh run failed (exit $CAP_RC)"
		tf="$TMPD/stats.out"
		trial_verdict=$(awk '/^TRIAL / { v = $4 } END { print v }' "$tf")
		proxy_cpu=$(field proxy_cpu "$tf" 'TRIAL ')
		proxy_cpu=${proxy_cpu%%s(*}
		ok=$(field ok "$tf" 'TRIAL ')
		ok=${ok%%/*}
		el=$(field elapsed "$tf" 'TRIAL ')
		el=${el%s}
		while read -r line; do
			out "${line/BPFPROG trial=1 /BPFPROG }"
		done < <(grep '^BPFPROG ' "$tf" || true)
		runs=$(field bpf_runs "$tf" 'TRIAL ')
		if [[ -z $runs ]]; then
			out "BPFSTATS no program counters: $(field bpf_stats "$tf" 'TRIAL ')$(field bpf_progs "$tf" 'TRIAL ')"
		else
			bpf_cpu=$(field bpf_cpu "$tf" 'TRIAL ')
			bpf_cpu=${bpf_cpu%s}
			line="BPFCPU rate=$ON_RATE duration=${STATS_DURATION}s trial=${trial_verdict:-?} calls=${ok:-?} bpf_runs=$runs"
			line+=" bpf_ns_per_run=$(field bpf_ns_per_run "$tf" 'TRIAL ') bpf_runs_per_call=$(field bpf_runs_per_call "$tf" 'TRIAL ')"
			line+=" bpf_ns_per_call=$(field bpf_ns_per_call "$tf" 'TRIAL ')"
			line+=" bpf_cpu=${bpf_cpu}s proxy_cpu=${proxy_cpu:-?}s bpf/proxy=$(field bpf_cpu/proxy_cpu "$tf" 'TRIAL ')"
			[[ $el =~ ^[0-9.]+$ ]] && line+=" bpf_cores=$(fcalc "$bpf_cpu / $el")"
			line+=" ring_drops=$(field ring_drops "$tf" 'TRIAL ')"
			line+=" netns=$( ((NETNS)) && echo on || echo off) ifaces=$(field ebpf_ifaces "$tf" 'TRIAL ')"
			out "$line"
		fi
		[[ $trial_verdict == PASS ]] || out "NOTE: the fixed-rate trial did not pass (noise near the limit?): its BPF figures still hold per run"
		grep '^TRIAL ' "$tf" | sed 's/^TRIAL  *1 /STATSTRIAL /' >>"$RESULT_FILE" || true
	fi
fi

out ""
out "VERDICT $VERDICT ebpf_off=$OFF_RATE ebpf_on=$ON_RATE ratio=$RATIO (min $MIN_RATIO) ring_drops=${ON_DROPS:-na} netns=$( ((NETNS)) && echo on || echo off)"
((REPEAT == 1 && !STAIRCASE)) && out "NOTE: single capacity searches on 2 shared cores; one bisection step at --resolution $RESOLUTION is $(awk -v r="$RESOLUTION" -v o="$OFF_RATE" 'BEGIN { if (o > 0) printf "%.1f", r / o * 100; else print "?" }')% of the off rate: use --repeat 3 (or more) before trusting a ratio near $MIN_RATIO."
out "# results: $RESULT_FILE"
[[ $VERDICT == PASS ]] || exit 1
exit 0
