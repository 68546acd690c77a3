#!/usr/bin/env bash
# bench/capacity.sh: highest call rate a proxy sustains with zero failed calls.
#
#   SIPp UAC --UDP--> proxy (sipvigil | kamailio) --UDP--> SIPp UAS, all on 127.0.0.1
#
# --netns: SIPp UAC and UAS in a network namespace this run creates, the
# proxy in the root namespace on the root end of a veth pair (lib.sh
# netns_setup), so a sipvigil eBPF capture sees each datagram once, as on a
# real NIC, not twice as on lo.
#
# Each trial starts a fresh proxy and a fresh UAS, runs the UAC at RATE cps for
# DURATION seconds (-r RATE -m RATE*DURATION) and passes only if the UAC exits
# 0, all RATE*DURATION calls succeeded, none failed, and the run did not take
# much longer than DURATION (the rate was really sustained).  The search is an
# exponential ramp from --start, then bisection down to --resolution cps.
# The proxy's CPU (utime+stime of all its processes, /proc/PID/stat) is read
# before and after each UAC run and reported as CPU-seconds per 1000 calls.
#
# See bench/README.md.  Run `bench/capacity.sh --help` for the options.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

DURATION=10
START_RATE=500
MAX_RATE=20000
RESOLUTION=50
SCENARIO=basic
MAX_TRIALS=25
FAIL_ON_RETRANS=0
CHILDREN_SET=0
STRETCH=1.1   # a trial may take at most duration*STRETCH + SLACK seconds
SLACK=1
REINVITE_QUEUE=off   # on: sipvigil gets the default reinvite delay queue + suspend rule
EBPF=off             # sipvigil ebpf.mode for the trials: off (default, no kernel capture) or on
REINVITE_QUEUE_SET=0
EBPF_SET=0           # --ebpf given: RESULT line and results file name say ebpf=on|off
FIXED_RATE=0         # --rate R: one trial at R, no search
BPF_PROG_STATS=0     # --bpf-prog-stats: per-program run_cnt/run_time_ns deltas over the UAC run
FAIL_ON_RING_DROPS=0 # --fail-on-ring-drops: an eBPF ring-buffer drop fails the trial
TRACING=off          # sipvigil tracing for the trials: off (default) or on (100% sampling to bin/otlpsink)
TRACING_SET=0        # --tracing given: the config gets a tracing section, RESULT/file name say tracing=on|off
FAIL_ON_SPANS_DROPPED=0 # --fail-on-spans-dropped: a lost span (or no tracing stats) fails the trial
# NETNS (lib.sh): --netns = SIPp in a namespace of this run, proxy on a veth in the root namespace
QUEUE_DELAY_MS=0     # per-call time the queue adds (10 with --reinvite-queue on)

usage() {
	cat <<EOF
usage: bench/capacity.sh [options]
  --proxy sipvigil|kamailio   proxy under test (default: $PROXY; bin/sipvigil is built if missing)
  --direct                    no proxy: UAC straight to UAS, measures SIPp's own ceiling
  --children N                kamailio UDP worker processes (default: $CHILDREN)
  --duration S                seconds of load per trial (default: $DURATION)
  --start RATE                first rate of the ramp, cps (default: $START_RATE)
  --max RATE                  never try above this rate, cps (default: $MAX_RATE)
  --resolution CPS            stop bisecting when pass/fail bounds are this close (default: $RESOLUTION)
  --scenario basic|b2b|reinvite
                              SIPp scenario pair (default: $SCENARIO); reinvite = basic call
                              plus one re-INVITE (sipp/uac_reinvite.xml, uas_reinvite.xml)
  --ebpf on|off               sipvigil only: ebpf.mode for the trials (default: off; on needs root).
                              on: each trial reports the proxy's shutdown "ebpf stats" (ring_drops,
                              matched, unmatched_kernel, unmatched_packet, ...) and marks drops/unmatched
  --fail-on-ring-drops        with --ebpf on: a trial with ring_drops > 0 (or no ebpf stats) fails
  --bpf-prog-stats            with --ebpf on: report run_cnt/run_time_ns of the proxy's BPF programs
                              (bpftool) over each UAC run; needs kernel.bpf_stats_enabled=1 (bench/ebpf.sh)
  --tracing on|off            sipvigil only: on = trace every call (sample_ratio 1.0) over OTLP/HTTP to a
                              fresh bench/otlpsink per trial (bin/otlpsink, built if missing); each trial
                              reports the proxy's shutdown "tracing stats" and "evidence stats" (spans,
                              spans_exported, spans_export_failed, evidence_dropped, spans_dropped);
                              off = tracing: {enabled: false} (default: no tracing section at all)
  --fail-on-spans-dropped     with --tracing on: a trial with spans_dropped > 0, unflushed spans, no spans
                              or no tracing stats fails
  --rate RATE                 one trial at RATE cps, no search (overrides --start/--max)
  --netns                     root, sipvigil or --direct: run SIPp UAC and UAS in a network namespace
                              created for this run (svbench-PID), connected by a veth pair
                              (svb0-PID/svb1-PID, a /30 of 10.250.0.0/16) to the proxy in the root
                              namespace, which listens on the veth root end: its eBPF programs then
                              run once per datagram (as on a NIC) instead of twice (lo); removed on exit
  --reinvite-queue on|off     sipvigil only: on = add the default reinvite-delay recipe (queue
                              "reinvite", delay 10ms, consumers 1, capacity 10000, max_wait 5s,
                              suspend rule INVITE in_dialog) to the config; off = no queues
                              (default: $REINVITE_QUEUE)
  --transport udp             only udp is implemented
  --hold-ms MS                UAC pause between ACK and BYE (default: $HOLD_MS)
  --ring-ms MS                basic UAS pause between 180 and 200 (default: $RING_MS)
  --kam-shm MB                kamailio shared memory (default: $KAM_SHM_MB)
  --kam-mem fm|tlsf|qm        kamailio shm+pkg memory manager, -x/-X (default: $KAM_MEM)
  --fail-on-retrans           also fail a trial on any SIP retransmission
  --stretch F --slack S       "rate sustained" check: the UAC run must finish within
                              duration*F + S seconds (+ ring/hold time) (default: $STRETCH, $SLACK)
  --max-trials N              safety bound on the number of trials (default: $MAX_TRIALS)
  --keep                      keep the temp dir with proxy/SIPp logs and stats
EOF
}

while (($#)); do
	case $1 in
	--proxy) PROXY=${2:?}; shift 2 ;;
	--direct) PROXY=direct; shift ;;
	--children) CHILDREN=${2:?}; CHILDREN_SET=1; shift 2 ;;
	--duration) DURATION=${2:?}; shift 2 ;;
	--start) START_RATE=${2:?}; shift 2 ;;
	--max) MAX_RATE=${2:?}; shift 2 ;;
	--resolution) RESOLUTION=${2:?}; shift 2 ;;
	--scenario) SCENARIO=${2:?}; shift 2 ;;
	--transport) TRANSPORT=${2:?}; shift 2 ;;
	--hold-ms) HOLD_MS=${2:?}; shift 2 ;;
	--ring-ms) RING_MS=${2:?}; shift 2 ;;
	--kam-shm) KAM_SHM_MB=${2:?}; shift 2 ;;
	--kam-mem) KAM_MEM=${2:?}; shift 2 ;;
	--fail-on-retrans) FAIL_ON_RETRANS=1; shift ;;
	--stretch) STRETCH=${2:?}; shift 2 ;;
	--slack) SLACK=${2:?}; shift 2 ;;
	--max-trials) MAX_TRIALS=${2:?}; shift 2 ;;
	--reinvite-queue) REINVITE_QUEUE=${2:?}; REINVITE_QUEUE_SET=1; shift 2 ;;
	--ebpf) EBPF=${2:?}; EBPF_SET=1; shift 2 ;;
	--fail-on-ring-drops) FAIL_ON_RING_DROPS=1; shift ;;
	--bpf-prog-stats) BPF_PROG_STATS=1; shift ;;
	--tracing) TRACING=${2:?}; TRACING_SET=1; shift 2 ;;
	--fail-on-spans-dropped) FAIL_ON_SPANS_DROPPED=1; shift ;;
	--rate) FIXED_RATE=${2:?}; shift 2 ;;
	--netns) NETNS=1; shift ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" ;;
	esac
done

[[ $FIXED_RATE =~ ^[0-9]+$ ]] || die "--rate must be a non-negative integer, got '$FIXED_RATE'"
if ((FIXED_RATE > 0)); then START_RATE=$FIXED_RATE MAX_RATE=$FIXED_RATE; fi
for v in DURATION START_RATE MAX_RATE RESOLUTION CHILDREN HOLD_MS RING_MS KAM_SHM_MB MAX_TRIALS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
[[ $STRETCH =~ ^[0-9]+(\.[0-9]+)?$ && $SLACK =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--stretch and --slack must be numbers"
((DURATION > 0 && START_RATE > 0 && RESOLUTION > 0 && CHILDREN > 0)) || die "duration, start, resolution and children must be > 0"
((START_RATE <= MAX_RATE)) || die "--start must be <= --max"
[[ $KAM_MEM =~ ^(fm|tlsf|qm)$ ]] || die "--kam-mem must be fm, tlsf or qm"
[[ $TRANSPORT == udp ]] || die "--transport $TRANSPORT: only udp is implemented"
if [[ $PROXY != kamailio ]] && ((CHILDREN_SET)); then
	log "note: --children only applies to kamailio, ignored for $PROXY"
fi
if ((NETNS)); then
	# bench/kamailio/kamailio.cfg listens on and relays to 127.0.0.1 (built in)
	[[ $PROXY != kamailio ]] || die "--netns: only sipvigil and --direct (bench/kamailio/kamailio.cfg has 127.0.0.1 built in)"
	((EUID == 0)) || die "--netns needs root (ip netns add, veth)"
	need_cmd ip sysctl
fi
[[ $REINVITE_QUEUE =~ ^(on|off)$ ]] || die "--reinvite-queue must be on or off"
if [[ $REINVITE_QUEUE == on ]]; then
	[[ $PROXY == sipvigil ]] || die "--reinvite-queue on only applies to sipvigil"
	[[ $SCENARIO == reinvite ]] || log "note: --reinvite-queue on holds in-dialog INVITEs only; scenario $SCENARIO has none (use --scenario reinvite)"
	# The embedded default recipe (proxy/config/default.yaml), verbatim.
	# log info: the proxy logs its queue stats at shutdown, which the trial
	# line reports; shutdown grace 5s so a failed trial's leftover
	# transactions do not keep it from logging them before the KILL.
	SIPVIGIL_EXTRA_YAML="queues: {reinvite: {delay: 10ms, consumers: 1, capacity: 10000, max_wait: 5s}}
suspend: [{name: reinvite-delay, match: {methods: [INVITE], in_dialog: true}, queue: reinvite}]
shutdown: {grace: 5s}"
	SIPVIGIL_LOG_LEVEL=info
	PROXY_STOP_WAIT=15
	QUEUE_DELAY_MS=10
fi

[[ $EBPF =~ ^(on|off)$ ]] || die "--ebpf must be on or off"
if [[ $PROXY == sipvigil ]]; then
	# eBPF capture on lo (TCX) for the trial, or explicitly off so that a
	# root run is not silently measured with the programs attached.
	SIPVIGIL_EBPF=$EBPF
	if [[ $EBPF == on ]]; then
		SIPVIGIL_LOG_LEVEL=info
		PROXY_STOP_WAIT=15
	fi
else
	EBPF_SET=0
	[[ $EBPF == off ]] || die "--ebpf on only applies to sipvigil"
fi
if ((BPF_PROG_STATS || FAIL_ON_RING_DROPS)) && [[ $EBPF != on ]]; then
	die "--bpf-prog-stats and --fail-on-ring-drops need --ebpf on"
fi
((BPF_PROG_STATS)) && need_cmd bpftool

[[ $TRACING =~ ^(on|off)$ ]] || die "--tracing must be on or off"
OTEL_CLEARED=()
if [[ $PROXY == sipvigil ]]; then
	if ((TRACING_SET)); then
		SIPVIGIL_TRACING=$TRACING
		# The config section is the only source: the proxy fills unset tracing
		# keys from OTEL_* (an endpoint there would turn tracing on in an
		# "off" run, a sampler or compression would change the "on" one).
		for v in $(compgen -e); do
			if [[ $v == OTEL_* ]]; then OTEL_CLEARED+=("$v"); unset "$v"; fi
		done
	fi
	if [[ $TRACING == on ]]; then
		# info: the proxy logs "tracing stats" and "evidence stats" when it
		# exits; the span flush may take a few seconds after the drain.
		SIPVIGIL_LOG_LEVEL=info
		((PROXY_STOP_WAIT >= 20)) || PROXY_STOP_WAIT=20
	fi
else
	TRACING_SET=0
	[[ $TRACING == off ]] || die "--tracing on only applies to sipvigil"
fi
if ((FAIL_ON_SPANS_DROPPED)) && [[ $TRACING != on ]]; then
	die "--fail-on-spans-dropped needs --tracing on"
fi

proxy_check_tools
[[ $REINVITE_QUEUE == on ]] && sipvigil_require_queues
[[ $EBPF == on ]] && sipvigil_require_ebpf
((TRACING_SET)) && sipvigil_require_tracing
if [[ $TRACING == on ]]; then ensure_otlpsink; fi
scenario_files "$SCENARIO"
bench_init
# after bench_init: its EXIT trap (bench_cleanup -> netns_cleanup) removes them
((NETNS)) && netns_setup

RQ_LABEL=""
if [[ $SCENARIO == reinvite || $REINVITE_QUEUE_SET == 1 ]] && [[ $PROXY == sipvigil ]]; then
	RQ_LABEL=$REINVITE_QUEUE
fi
EBPF_LABEL=""
((EBPF_SET)) && EBPF_LABEL=$EBPF
TRACING_LABEL=""
((TRACING_SET)) && TRACING_LABEL=$TRACING
RESULT_FILE="$RESULTS_DIR/$PROXY-$SCENARIO$( ((NETNS)) && echo "-netns")${RQ_LABEL:+-queue-$RQ_LABEL}${EBPF_LABEL:+-ebpf-$EBPF_LABEL}${TRACING_LABEL:+-tracing-$TRACING_LABEL}$( ((FIXED_RATE)) && echo "-r$FIXED_RATE")-$(date +%Y%m%d-%H%M%S).txt"
: >"$RESULT_FILE"

CHILDREN_LABEL=$CHILDREN
[[ $PROXY == kamailio ]] || CHILDREN_LABEL=na

env_header
out "# capacity: scenario=$SCENARIO transport=$TRANSPORT duration=${DURATION}s start=$START_RATE max=$MAX_RATE resolution=$RESOLUTION hold=${HOLD_MS}ms ring=${RING_MS}ms"
out "# pass = UAC rc 0, failed=0, ok=rate*duration, elapsed <= duration*$STRETCH+${SLACK}s(+ring+hold$( ((QUEUE_DELAY_MS)) && echo "+queue delay ${QUEUE_DELAY_MS}ms"))$( ((FAIL_ON_RETRANS)) && echo ', no retransmissions')"
if [[ -n $EBPF_LABEL ]]; then
	out "# ebpf: $EBPF$([[ $EBPF == on ]] && echo " (TC capture on $( ((NETNS)) && echo "$NETNS_VETH_ROOT, one hook per datagram" || echo "lo, two hooks per datagram"); trial lines add the proxy's shutdown ebpf stats; note=ebpf-ring-drops/ebpf-unmatched/ebpf-no-stats mark a trial$( ((FAIL_ON_RING_DROPS)) && echo ', ring drops fail it'))")"
fi
if [[ -n $TRACING_LABEL ]]; then
	if [[ $TRACING == on ]]; then
		out "# tracing: on (sample_ratio 1.0, OTLP/HTTP to bench/otlpsink on 127.0.0.1, a fresh one per trial${SIPVIGIL_TRACING_EXTRA:+; extra: $SIPVIGIL_TRACING_EXTRA}; trial lines add the proxy's shutdown tracing/evidence stats; spans_dropped = spans_export_failed + spans_queue_dropped + evidence_dropped$( ((FAIL_ON_SPANS_DROPPED)) && echo ', a dropped span fails the trial'))"
	else
		out "# tracing: off (tracing: {enabled: false})"
	fi
	((${#OTEL_CLEARED[@]})) && out "# tracing: ignored (unset for the proxy) from the environment: ${OTEL_CLEARED[*]}"
fi
((FIXED_RATE)) && out "# fixed rate: one trial at $FIXED_RATE cps, no search"
if [[ -n $RQ_LABEL ]]; then
	out "# reinvite queue: $REINVITE_QUEUE$([[ $REINVITE_QUEUE == on ]] && echo " (queue reinvite: delay 10ms consumers 1 capacity 10000 max_wait 5s; rule reinvite-delay: INVITE in_dialog; every call's re-INVITE must be enqueued)")"
fi

# psi_cpu_us: cumulative microseconds during which some runnable task waited
# for a CPU (/proc/pressure/cpu, "some" line); empty when PSI is unavailable.
# (/proc/stat busy/idle ticks proved unreliable in the VM this was written on.)
psi_cpu_us() {
	awk '$1 == "some" { for (i = 2; i <= NF; i++) if ($i ~ /^total=/) { sub(/^total=/, "", $i); print $i } }' \
		/proc/pressure/cpu 2>/dev/null || true
}

TRIALS=0
BEST_RATE=0
BEST_CPU1K=""
BEST_LINE=""
BEST_EBPF=""      # "ring_drops=N ..." of the best passing trial (--ebpf on)
BEST_TRACING=""   # "spans_dropped=N ..." of the best passing trial (--tracing on)
FOREIGN_BPF=0     # some trial ran while another process's sipcap programs were loaded
SIPP_SATURATED=0
TRIAL_SUMMARY=()

# run_trial RATE: sets TRIAL_PASS (0/1)
run_trial() {
	local rate=$1 calls dir target tmo hard
	TRIALS=$((TRIALS + 1))
	calls=$((rate * DURATION))
	dir="$WORK/trial-$TRIALS-r$rate"
	mkdir -p "$dir"
	tmo=$((DURATION * 2 + 15))
	hard=$((DURATION * 2 + 30))
	TRIAL_PASS=0

	alloc_ports
	log "trial $TRIALS: rate=$rate cps calls=$calls proxy=$PROXY ports proxy=$PROXY_PORT uas=$UAS_PORT uac=$UAC_PORT"
	start_uas "$dir" $((hard + 30)) || die "could not start the SIPp UAS (see $dir)"
	if [[ $TRACING == on ]]; then
		start_otlpsink "$dir" || { KEEP=1; die "could not start bin/otlpsink on 127.0.0.1:$OTLP_PORT (see $dir)"; }
	fi
	if ! start_proxy "$dir"; then
		KEEP=1
		die "could not start $PROXY (logs in $dir)"
	fi
	local thost=$PROXY_IP
	target=$PROXY_PORT
	[[ $PROXY == direct ]] && target=$UAS_PORT thost=$SIPP_IP
	# eBPF on: where the programs are attached (the proxy's startup line). With
	# --netns that must be the veth root end and nothing else.
	local ebpf_ifaces=""
	if [[ $EBPF == on ]]; then
		ebpf_ifaces=$(sipvigil_ebpf_ifaces "$dir/proxy.log")
		if ((NETNS)) && [[ $ebpf_ifaces != "$NETNS_VETH_ROOT" ]]; then
			KEEP=1
			die "--netns: the proxy attached its eBPF programs to '${ebpf_ifaces:-?}', expected $NETNS_VETH_ROOT only (see $dir/proxy.log)"
		fi
	fi

	local psi0 psi1 u0 u1
	local -a bpf_ids=() bpf0=() bpf1=()
	if ((BPF_PROG_STATS)); then
		mapfile -t bpf_ids < <(proxy_bpf_prog_ids)
		((${#bpf_ids[@]})) && mapfile -t bpf0 < <(bpf_prog_snapshot "${bpf_ids[@]}")
	fi
	# other sipcap programs on the host (e.g. concurrent e2e tests) run on our
	# packets too: checked before and after the run when --ebpf was given
	local foreign0="" foreign1=""
	((EBPF_SET && EUID == 0)) && foreign0=$(foreign_sipcap_progs)
	local sink0=0 sink1=0
	[[ -n $SINK_PID ]] && sink0=$(cpu_ticks "$SINK_PID")
	psi0=$(psi_cpu_us)
	u0=$(udp_errors)
	run_uac "$dir" "$rate" "$calls" "$tmo" "$hard" "$target" "$thost"
	psi1=$(psi_cpu_us)
	u1=$(udp_errors)
	[[ -n $SINK_PID ]] && sink1=$(cpu_ticks "$SINK_PID")
	((${#bpf_ids[@]})) && mapfile -t bpf1 < <(bpf_prog_snapshot "${bpf_ids[@]}")
	((EBPF_SET && EUID == 0)) && foreign1=$(foreign_sipcap_progs)
	# let the UAS write one more stats line (-fd 1) and in-flight retransmissions
	# settle, then stop everything; this also spaces the trials out
	sleep 1
	stop_sipp
	stop_proxy
	# after the proxy: it flushes its last spans to the sink when it exits
	stop_otlpsink
	kill_strays

	local csv="$dir/uac_stat.csv" ok failed retrans wd_major wd_minor dead ooc reasons uas_failed
	ok=$(stat_get "$csv" 'SuccessfulCall(C)')
	failed=$(stat_get "$csv" 'FailedCall(C)')
	retrans=$(stat_get "$csv" 'Retransmissions(C)')
	wd_major=$(stat_get "$csv" 'WatchdogMajor(C)')
	wd_minor=$(stat_get "$csv" 'WatchdogMinor(C)')
	dead=$(stat_get "$csv" 'DeadCallMsgs(C)')
	ooc=$(stat_get "$csv" 'OutOfCallMsgs(C)')
	reasons=$(failure_summary "$csv")
	uas_failed=$(stat_get "$dir/uas_stat.csv" 'FailedCall(C)')
	ok=${ok:-0} failed=${failed:-?} retrans=${retrans:-?} uas_failed=${uas_failed:-?}

	local el max_el proxy_s uac_cores uas_cores proxy_cores cpu1k achieved psi=na
	el=$UAC_ELAPSED
	max_el=$(fcalc "$DURATION * $STRETCH + $SLACK + ($RING_MS + $HOLD_MS + $QUEUE_DELAY_MS) / 1000")
	proxy_s=$(fcalc "$PROXY_TICKS / $CLK_TCK")
	proxy_cores=$(fcalc "$PROXY_TICKS / $CLK_TCK / $el")
	uac_cores=$(fcalc "$UAC_CPU_TICKS / $CLK_TCK / $el")
	uas_cores=$(fcalc "$UAS_TICKS / $CLK_TCK / $el")
	achieved=$(awk -v ok="$ok" -v el="$el" 'BEGIN { printf "%.0f", ok / el }')
	if [[ -n $psi0 && -n $psi1 ]]; then
		psi=$(awk -v a="$psi0" -v b="$psi1" -v el="$el" 'BEGIN { printf "%.0f", (b - a) / (el * 1e6) * 100 }')
	fi
	local udp_drops
	udp_drops=$(awk -v a="$u0" -v b="$u1" 'BEGIN { split(a, x, " "); split(b, y, " "); print (y[1] - x[1]) "/" (y[2] - x[2]) }')
	cpu1k=na
	((ok > 0)) && [[ $PROXY != direct ]] && cpu1k=$(fcalc "$PROXY_TICKS / $CLK_TCK / $ok * 1000")

	local why=()
	((UAC_RC == 0)) || why+=("uac_rc=$UAC_RC")
	[[ $failed == 0 ]] || why+=("failed=$failed")
	[[ $ok == "$calls" ]] || why+=("ok=$ok/$calls")
	awk -v e="$el" -v m="$max_el" 'BEGIN { exit !(e <= m) }' || why+=("slow(elapsed>${max_el}s)")
	if ((FAIL_ON_RETRANS)) && [[ $retrans != 0 ]]; then why+=("retrans=$retrans"); fi
	# the reinvite queue must really have held every call's re-INVITE
	local qline="" reinv_rtt=""
	if [[ $SCENARIO == reinvite ]]; then
		reinv_rtt=$(stat_get "$csv" 'ResponseTime2(C)')
	fi
	if [[ $REINVITE_QUEUE == on ]]; then
		local -a qs
		mapfile -t qs < <(queue_stats "$dir/proxy.log" reinvite)
		if ((${#qs[@]} == 0)); then
			qline="queue=no-stats"
		else
			local enq res late50 late99 latemax
			enq=$(printf '%s\n' "${qs[@]}" | kv_get enqueued)
			res=$(printf '%s\n' "${qs[@]}" | kv_get resumed)
			late50=$(printf '%s\n' "${qs[@]}" | kv_get late_p50)
			late99=$(printf '%s\n' "${qs[@]}" | kv_get late_p99)
			latemax=$(printf '%s\n' "${qs[@]}" | kv_get late_max)
			qline="queue_enqueued=$enq queue_resumed=$res late_p50=$late50 late_p99=$late99 late_max=$latemax"
			if [[ $SCENARIO == reinvite && $enq != "$calls" ]]; then why+=("queue_enqueued=$enq/$calls"); fi
		fi
	fi

	# eBPF on: the proxy's shutdown counters (whole proxy lifetime: probe,
	# load, drain). Drops or unmatched messages mark the trial.
	local eline="" enotes=()
	if [[ $EBPF == on ]]; then
		local -a es
		mapfile -t es < <(ebpf_stats "$dir/proxy.log")
		if ((${#es[@]} == 0)); then
			eline="ebpf=no-stats"
			enotes+=("ebpf-no-stats")
			((FAIL_ON_RING_DROPS)) && why+=("ebpf=no-stats")
		else
			local k v
			for k in ring_drops matched unmatched_kernel unmatched_packet packets bpf_seen bpf_captured; do
				v=$(printf '%s\n' "${es[@]}" | kv_get "$k")
				eline+="${eline:+ }$k=${v:-?}"
				case $k in
				ring_drops)
					if [[ ${v:-?} != 0 ]]; then
						enotes+=("ebpf-ring-drops")
						((FAIL_ON_RING_DROPS)) && why+=("ring_drops=${v:-?}")
					fi
					;;
				unmatched_kernel | unmatched_packet) [[ ${v:-?} == 0 ]] || enotes+=("ebpf-unmatched") ;;
				esac
			done
		fi
		eline+=" ebpf_ifaces=${ebpf_ifaces:-?}"
	fi
	# tracing on: the proxy's shutdown span and evidence counters (whole proxy
	# lifetime) and the sink's request count. spans_dropped = spans lost to
	# export errors + transaction records the tracker had to drop (its
	# hand-off queue was full: those transactions never became spans).
	local tline="" tnotes=()
	if [[ $TRACING == on ]]; then
		local -a ts es2 ss
		mapfile -t ts < <(sipvigil_stats "$dir/proxy.log" "tracing stats")
		mapfile -t es2 < <(sipvigil_stats "$dir/proxy.log" "evidence stats")
		mapfile -t ss < <(otlpsink_counts "$dir/otlpsink.log")
		local spans exported efailed xdropped erecords edropped eresolved mk mu sreq sbytes
		if ((${#ts[@]})); then
			spans=$(printf '%s\n' "${ts[@]}" | kv_get spans)
			exported=$(printf '%s\n' "${ts[@]}" | kv_get exported)
			efailed=$(printf '%s\n' "${ts[@]}" | kv_get export_failed)
			xdropped=$(printf '%s\n' "${ts[@]}" | kv_get dropped)
		fi
		if ((${#es2[@]})); then
			erecords=$(printf '%s\n' "${es2[@]}" | kv_get records)
			edropped=$(printf '%s\n' "${es2[@]}" | kv_get dropped)
			eresolved=$(printf '%s\n' "${es2[@]}" | kv_get resolved)
			mk=$(printf '%s\n' "${es2[@]}" | kv_get msgs_kernel)
			mu=$(printf '%s\n' "${es2[@]}" | kv_get msgs_user)
		fi
		if ((${#ss[@]})); then
			sreq=$(printf '%s\n' "${ss[@]}" | kv_get requests)
			sbytes=$(printf '%s\n' "${ss[@]}" | kv_get bytes)
		fi
		local sink_s
		sink_s=$(fcalc "($sink1 - $sink0) / $CLK_TCK")
		if [[ ${spans:-} =~ ^[0-9]+$ && ${exported:-} =~ ^[0-9]+$ && ${efailed:-} =~ ^[0-9]+$ && ${edropped:-} =~ ^[0-9]+$ ]]; then
			[[ ${xdropped:-} =~ ^[0-9]+$ ]] || xdropped=0
			local sdropped=$((efailed + edropped + xdropped)) unflushed=$((spans - exported - efailed - xdropped))
			tline="spans_dropped=$sdropped spans=$spans spans_exported=$exported spans_export_failed=$efailed spans_queue_dropped=$xdropped"
			tline+=" evidence_records=${erecords:-?} evidence_dropped=$edropped evidence_resolved=${eresolved:-?}"
			tline+=" msgs_kernel=${mk:-?} msgs_user=${mu:-?}"
			((unflushed != 0)) && tline+=" spans_unflushed=$unflushed"
			if ((sdropped > 0)); then
				tnotes+=("spans-dropped")
				((FAIL_ON_SPANS_DROPPED)) && why+=("spans_dropped=$sdropped")
			fi
			# the flush at exit timed out: those spans never reached the sink
			if ((unflushed != 0)); then
				tnotes+=("spans-unflushed")
				((FAIL_ON_SPANS_DROPPED)) && why+=("spans_unflushed=$unflushed")
			fi
			if ((spans == 0 && ok > 0)); then
				tnotes+=("tracing-no-spans")
				((FAIL_ON_SPANS_DROPPED)) && why+=("spans=0")
			fi
		else
			# proxy killed before it logged, or a line is missing
			tline="spans_dropped=na tracing=no-stats(tracing_stats=${#ts[@]},evidence_stats=${#es2[@]})"
			tnotes+=("tracing-no-stats")
			((FAIL_ON_SPANS_DROPPED)) && why+=("tracing=no-stats")
		fi
		tline+=" sink_requests=${sreq:-?} sink_bytes=${sbytes:-?} sink_cpu=${sink_s}s"
	fi
	# --bpf-prog-stats: per-program deltas over the UAC run
	local bline=""
	if ((BPF_PROG_STATS)); then
		if ((${#bpf_ids[@]} == 0)); then
			bline="bpf_progs=none"
		else
			local bpf_tot_cnt bpf_tot_ns
			read -r bpf_tot_cnt bpf_tot_ns < <(
				{ printf 'A %s\n' "${bpf0[@]}"; printf 'B %s\n' "${bpf1[@]}"; } | awk '
					$1 == "A" { c0[$2] = $4; n0[$2] = $5; next }
					$1 == "B" { tc += $4 - c0[$2]; tn += $5 - n0[$2] }
					END { printf "%d %d\n", tc, tn }')
			local bpf_s
			bpf_s=$(awk -v n="$bpf_tot_ns" 'BEGIN { printf "%.3f", n / 1e9 }')
			if ((bpf_tot_cnt == 0)); then
				bline="bpf_stats=disabled(kernel.bpf_stats_enabled=$(cat /proc/sys/kernel/bpf_stats_enabled 2>/dev/null || echo '?'))"
			else
				bline="bpf_runs=$bpf_tot_cnt bpf_cpu=${bpf_s}s"
				bline+=" bpf_ns_per_run=$(fcalc "$bpf_tot_ns / $bpf_tot_cnt")"
				((ok > 0)) && bline+=" bpf_runs_per_call=$(fcalc "$bpf_tot_cnt / $ok") bpf_ns_per_call=$(fcalc "$bpf_tot_ns / $ok")"
				((PROXY_TICKS > 0)) && bline+=" bpf_cpu/proxy_cpu=$(fcalc "$bpf_tot_ns / 1e9 / ($PROXY_TICKS / $CLK_TCK)")"
			fi
		fi
	fi

	local verdict=PASS
	if ((${#why[@]})); then verdict=FAIL; else TRIAL_PASS=1; fi

	local notes=("${enotes[@]}" "${tnotes[@]}")
	if [[ ${foreign0:-0} != 0 || ${foreign1:-0} != 0 ]]; then
		notes+=("foreign-sipcap-progs(before=${foreign0:-?},after=${foreign1:-?})")
		FOREIGN_BPF=1
	fi
	if awk -v u="$uac_cores" -v s="$uas_cores" 'BEGIN { exit !(u >= 0.85 || s >= 0.85) }'; then
		notes+=("SIPp-near-100%-of-a-core")
		SIPP_SATURATED=1
	fi
	if [[ ${wd_major:-0} != 0 || ${wd_minor:-0} != 0 ]]; then
		notes+=("sipp-watchdog(major=$wd_major,minor=$wd_minor)")
		SIPP_SATURATED=1
	fi
	if [[ $psi != na ]] && ((psi >= 30)); then notes+=("cpu-contention"); fi

	local line
	line=$(printf 'TRIAL %2d rate=%-6s %s ok=%s/%s failed=%s retrans=%s elapsed=%ss eff=%scps proxy_cpu=%ss(%s cores) cpu_per_1000_calls=%s uac=%s uas=%s cores cpu_pressure=%s%% udp_drops(rcv/snd)=%s uas_failed=%s dead=%s ooc=%s' \
		"$TRIALS" "$rate" "$verdict" "$ok" "$calls" "$failed" "$retrans" "$el" "$achieved" \
		"$proxy_s" "$proxy_cores" "$cpu1k" "$uac_cores" "$uas_cores" "$psi" "$udp_drops" "$uas_failed" "${dead:-?}" "${ooc:-?}")
	[[ -n $reinv_rtt ]] && line+=" reinvite_rtt_avg=$reinv_rtt"
	[[ -n $qline ]] && line+=" $qline"
	[[ -n $eline ]] && line+=" $eline"
	[[ -n $tline ]] && line+=" $tline"
	[[ -n $bline ]] && line+=" $bline"
	((${#why[@]})) && line+=" why=$(IFS=,; echo "${why[*]}") reasons=$reasons"
	((${#notes[@]})) && line+=" note=$(IFS=,; echo "${notes[*]}")"
	out "$line"
	if ((BPF_PROG_STATS)) && ((${#bpf1[@]})); then
		local b
		for b in "${bpf1[@]}"; do
			printf '%s\n' "$b"
		done | while read -r id name cnt ns; do
			local c0=0 n0=0 a
			for a in "${bpf0[@]}"; do
				read -r aid _ ac an <<<"$a"
				[[ $aid == "$id" ]] && c0=$ac n0=$an
			done
			local dc=$((cnt - c0)) dn=$((ns - n0)) per=na
			((dc > 0)) && per=$(fcalc "$dn / $dc")
			out "BPFPROG trial=$TRIALS rate=$rate id=$id name=$name run_cnt=$dc run_time_ns=$dn ns_per_run=$per"
		done
	fi
	TRIAL_SUMMARY+=("$rate:$verdict")

	if ((TRIAL_PASS)) && ((rate > BEST_RATE)); then
		BEST_RATE=$rate
		BEST_CPU1K=$cpu1k
		BEST_LINE=$line
		BEST_EBPF=$eline
		BEST_TRACING=$tline
	fi
}

lo=0  # highest passing rate
hi="" # lowest failing rate
rate=$START_RATE
capped=0
while ((TRIALS < MAX_TRIALS)); do
	run_trial "$rate"
	((FIXED_RATE)) && break
	if ((TRIAL_PASS)); then
		lo=$rate
		if ((rate >= MAX_RATE)); then capped=1; break; fi
	else
		hi=$rate
	fi
	if [[ -z $hi ]]; then
		rate=$((rate * 2))
		((rate > MAX_RATE)) && rate=$MAX_RATE
		continue
	fi
	((hi - lo <= RESOLUTION)) && break
	rate=$(((lo + hi) / 2 / RESOLUTION * RESOLUTION))
	((rate <= lo)) && rate=$((lo + RESOLUTION))
	((rate >= hi)) && break
done

out ""
trials_str=$(IFS=,; echo "${TRIAL_SUMMARY[*]}")
result="RESULT proxy=$PROXY children=$CHILDREN_LABEL scenario=$SCENARIO transport=$TRANSPORT duration=${DURATION}s max_rate=$BEST_RATE cps"
((NETNS)) && result+=" netns=on"
[[ -n $RQ_LABEL ]] && result+=" reinvite_queue=$RQ_LABEL"
[[ -n $EBPF_LABEL ]] && result+=" ebpf=$EBPF_LABEL"
if [[ $EBPF == on ]]; then
	# the eBPF counters of the best passing trial (the capacity's own)
	if [[ $BEST_EBPF == ring_drops=* ]]; then
		result+=" ${BEST_EBPF%% *}"
	elif [[ -n $BEST_EBPF ]]; then
		result+=" ring_drops=na(${BEST_EBPF%% *})"
	else
		result+=" ring_drops=na"
	fi
fi
[[ -n $TRACING_LABEL ]] && result+=" tracing=$TRACING_LABEL"
if [[ $TRACING == on ]]; then
	# spans dropped in the best passing trial (the capacity's own)
	if [[ $BEST_TRACING == spans_dropped=* ]]; then
		result+=" ${BEST_TRACING%% *}"
	else
		result+=" spans_dropped=na"
	fi
fi
if [[ $PROXY != direct ]]; then result+=" cpu_per_1000_calls=${BEST_CPU1K:-na} s"; fi
result+=" trials=$TRIALS [$trials_str]"
((capped)) && result+=" capped_by_max=$MAX_RATE"
[[ -n $hi ]] && result+=" lowest_fail=$hi"
out "$result"
[[ -n $BEST_LINE ]] && out "BEST ${BEST_LINE#TRIAL }"
if [[ $EBPF == on && -n $BEST_EBPF ]]; then
	out "EBPF best_rate=$BEST_RATE $BEST_EBPF"
fi
if [[ $TRACING == on && -n $BEST_TRACING ]]; then
	out "TRACING best_rate=$BEST_RATE $BEST_TRACING"
fi
if ((SIPP_SATURATED)); then
	out "NOTE: SIPp looked saturated in at least one trial (a SIPp process near 100% of a core or its watchdog fired)."
	out "NOTE: the limit may be SIPp, not the proxy: compare with bench/capacity.sh --direct."
fi
if ((FOREIGN_BPF)); then
	if ((NETNS)); then
		out "NOTE: another process's sipcap BPF programs were loaded during some trials (note=foreign-sipcap-progs): with --netns this run's packets do not pass them (they are not on $NETNS_VETH_ROOT), but their traffic competes for the CPU."
	else
		out "NOTE: another process's sipcap BPF programs were loaded during some trials (note=foreign-sipcap-progs): they ran on this run's lo packets too."
	fi
fi
if [[ $PROXY == direct ]]; then
	out "NOTE: --direct has no proxy; max_rate is the SIPp UAC+UAS ceiling on this host."
fi
out "NOTE: 2 cores shared by SIPp UAC + SIPp UAS + proxy (+ anything else running); short trials are noisy."
out "# results: $RESULT_FILE"
((BEST_RATE > 0)) || exit 1
exit 0
