#!/usr/bin/env bash
# bench/suspend.sh: delay accuracy of sipvigil's suspend/queue/resume pipeline
# under load.
#
#   SIPp UAC --MESSAGE--> sipvigil (every MESSAGE suspended DELAY) --> SIPp UAS (200)
#
# One run at a fixed rate: a fresh sipvigil whose only suspend rule holds
# every MESSAGE in queue "bench" (delay 10ms, consumers 1, capacity 100000,
# max_wait 5s by default), a SIPp UAC sending RATE MESSAGEs per second for
# DURATION seconds (-m RATE*DURATION), a SIPp UAS answering 200.  Then the
# proxy gets SIGTERM and logs one "queue stats" line per queue at shutdown;
# this script parses it and prints
#
#   RESULT suspends_per_s=... lateness_p50=... p99=... max=... wait_p50=... failed_calls=... proxy_cpu_per_1000=...
#
# Lateness = the time the owning worker resumed the request minus (enqueue
# time + delay).  The requirement is p99 <= 1 ms at 1,000 suspends/s.
#
# See bench/README.md.  Run `bench/suspend.sh --help` for the options.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

RATE=5000
DURATION=10
DELAY=10ms
CONSUMERS=1
CAPACITY=100000
MAX_WAIT=5s
TARGET_P99_MS=1
STRETCH=1.1
SLACK=1

usage() {
	cat <<EOF
usage: bench/suspend.sh [options]
  --rate N           MESSAGEs (= suspends) per second (default: $RATE)
  --duration S       seconds of load (default: $DURATION); the UAC sends rate*duration MESSAGEs
  --delay D          queue delay, Go duration (default: $DELAY)
  --consumers N      queue consumers (default: $CONSUMERS)
  --capacity N       queue capacity (default: $CAPACITY)
  --max-wait D       queue max_wait, Go duration (default: $MAX_WAIT)
  --target-p99-ms M  lateness p99 target printed as met/missed (default: $TARGET_P99_MS)
  --keep             keep the temp dir with proxy/SIPp logs and stats
Environment: SIPVIGIL_BIN (default bin/sipvigil, built if missing; must know "queues"), SIPP.
EOF
}

while (($#)); do
	case $1 in
	--rate) RATE=${2:?}; shift 2 ;;
	--duration) DURATION=${2:?}; shift 2 ;;
	--delay) DELAY=${2:?}; shift 2 ;;
	--consumers) CONSUMERS=${2:?}; shift 2 ;;
	--capacity) CAPACITY=${2:?}; shift 2 ;;
	--max-wait) MAX_WAIT=${2:?}; shift 2 ;;
	--target-p99-ms) TARGET_P99_MS=${2:?}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" ;;
	esac
done

for v in RATE DURATION CONSUMERS CAPACITY; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
((RATE > 0 && DURATION > 0 && CONSUMERS > 0 && CAPACITY > 0)) || die "rate, duration, consumers and capacity must be > 0"
# Go durations this script understands (it needs the delay in ms for the
# timing check): a number and one unit.
dur_ms() {
	[[ $1 =~ ^([0-9]+(\.[0-9]+)?)(us|µs|ms|s)$ ]] || return 1
	local n=${BASH_REMATCH[1]} u=${BASH_REMATCH[3]}
	case $u in
	us | µs) fcalc "$n / 1000" ;;
	ms) fcalc "$n" ;;
	s) fcalc "$n * 1000" ;;
	esac
}
DELAY_MS=$(dur_ms "$DELAY") || die "--delay: want a number with unit us, ms or s (e.g. 10ms), got '$DELAY'"
dur_ms "$MAX_WAIT" >/dev/null || die "--max-wait: want a number with unit us, ms or s (e.g. 5s), got '$MAX_WAIT'"
[[ $TARGET_P99_MS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--target-p99-ms must be a number"

PROXY=sipvigil
SIPVIGIL_LOG_LEVEL=info # the queue stats line is logged at info
PROXY_STOP_WAIT=20      # drain (everything is answered: fast) + 2 s linger + stats
SIPVIGIL_EXTRA_YAML="queues: {bench: {delay: $DELAY, consumers: $CONSUMERS, capacity: $CAPACITY, max_wait: $MAX_WAIT}}
suspend: [{name: all-messages, match: {methods: [MESSAGE]}, queue: bench}]
shutdown: {grace: 5s}"

proxy_check_tools
sipvigil_require_queues
scenario_files message
bench_init

RESULT_FILE="$RESULTS_DIR/sipvigil-suspend-r$RATE-$(date +%Y%m%d-%H%M%S).txt"
: >"$RESULT_FILE"

CALLS=$((RATE * DURATION))
env_header
out "# suspend: MESSAGE at rate=$RATE/s duration=${DURATION}s count=$CALLS, every one suspended: queue delay=$DELAY consumers=$CONSUMERS capacity=$CAPACITY max_wait=$MAX_WAIT"

dir="$WORK/suspend"
mkdir -p "$dir"
tmo=$((DURATION * 2 + 15))
hard=$((DURATION * 2 + 30))
alloc_ports
log "suspend run: rate=$RATE/s count=$CALLS ports proxy=$PROXY_PORT uas=$UAS_PORT uac=$UAC_PORT"
start_uas "$dir" $((hard + 30)) || die "could not start the SIPp UAS (see $dir)"
if ! start_proxy "$dir"; then
	KEEP=1
	die "could not start sipvigil (logs in $dir)"
fi

u0=$(udp_errors)
run_uac "$dir" "$RATE" "$CALLS" "$tmo" "$hard" "$PROXY_PORT"
u1=$(udp_errors)
# let in-flight retransmissions settle, then stop: UAC and UAS first (their
# stats are final), then the proxy with SIGTERM so that it logs its queue stats
sleep 1
stop_sipp
log "stopping sipvigil (SIGTERM; it drains, lingers 2 s and logs its queue stats)"
stop_proxy
kill_strays

csv="$dir/uac_stat.csv"
ok=$(stat_get "$csv" 'SuccessfulCall(C)')
failed=$(stat_get "$csv" 'FailedCall(C)')
retrans=$(stat_get "$csv" 'Retransmissions(C)')
rtt=$(stat_get "$csv" 'ResponseTime1(C)')
reasons=$(failure_summary "$csv")
ok=${ok:-0} failed=${failed:-?} retrans=${retrans:-?}

mapfile -t qs < <(queue_stats "$dir/proxy.log" bench)
q() { printf '%s\n' "${qs[@]}" | kv_get "$1"; }
enqueued=$(q enqueued) released=$(q released) overflowed=$(q overflowed) expired=$(q expired)
cancelled=$(q cancelled) resumed=$(q resumed)
late_p50=$(q late_p50) late_p99=$(q late_p99) late_max=$(q late_max)
wait_p50=$(q wait_p50) wait_p99=$(q wait_p99) wait_max=$(q wait_max)

el=$UAC_ELAPSED
rate_s=na cpu1k=na
[[ -n $enqueued ]] && rate_s=$(awk -v n="$enqueued" -v el="$el" 'BEGIN { printf "%.0f", n / el }')
((ok > 0)) && cpu1k=$(fcalc "$PROXY_TICKS / $CLK_TCK / $ok * 1000")
proxy_cores=$(fcalc "$PROXY_TICKS / $CLK_TCK / $el")
uac_cores=$(fcalc "$UAC_CPU_TICKS / $CLK_TCK / $el")
uas_cores=$(fcalc "$UAS_TICKS / $CLK_TCK / $el")
udp_drops=$(awk -v a="$u0" -v b="$u1" 'BEGIN { split(a, x, " "); split(b, y, " "); print (y[1] - x[1]) "/" (y[2] - x[2]) }')

why=()
((UAC_RC == 0)) || why+=("uac_rc=$UAC_RC")
[[ $failed == 0 ]] || why+=("failed=$failed")
[[ $ok == "$CALLS" ]] || why+=("ok=$ok/$CALLS")
max_el=$(fcalc "$DURATION * $STRETCH + $SLACK + $DELAY_MS / 1000")
awk -v e="$el" -v m="$max_el" 'BEGIN { exit !(e <= m) }' || why+=("slow(elapsed>${max_el}s)")
if [[ -z $enqueued ]]; then
	why+=("no-queue-stats")
else
	[[ $enqueued == "$CALLS" ]] || why+=("enqueued=$enqueued/$CALLS")
	[[ $resumed == "$enqueued" ]] || why+=("resumed=$resumed/$enqueued")
	[[ $overflowed == 0 && $expired == 0 ]] || why+=("overflowed=$overflowed,expired=$expired")
fi

target=na
if [[ -n $late_p99 ]]; then
	target=missed
	awk -v p="${late_p99%ms}" -v t="$TARGET_P99_MS" 'BEGIN { exit !(p <= t) }' && target=met
fi

out "RUN rate=$RATE ok=$ok/$CALLS failed=$failed retrans=$retrans elapsed=${el}s sipp_rtt_avg=${rtt:-?} proxy_cpu=$(fcalc "$PROXY_TICKS / $CLK_TCK")s($proxy_cores cores) uac=$uac_cores uas=$uas_cores cores udp_drops(rcv/snd)=$udp_drops"
out "QUEUE bench $(printf '%s ' "${qs[@]}")"
line="RESULT suspends_per_s=$rate_s lateness_p50=${late_p50:-na} p99=${late_p99:-na} max=${late_max:-na} wait_p50=${wait_p50:-na} failed_calls=$failed proxy_cpu_per_1000=$cpu1k"
wait_est=na
[[ -n $late_p50 ]] && wait_est="$(fcalc "$DELAY_MS + ${late_p50%ms}")ms"
line+=" rate=$RATE delay=$DELAY consumers=$CONSUMERS wait_p50_est=$wait_est wait_p99=${wait_p99:-na} wait_max=${wait_max:-na} enqueued=${enqueued:-na} resumed=${resumed:-na} overflowed=${overflowed:-na} expired=${expired:-na} cancelled=${cancelled:-na} released=${released:-na} p99_target=${TARGET_P99_MS}ms:$target"
((${#why[@]})) && line+=" INVALID why=$(IFS=,; echo "${why[*]}") reasons=$reasons"
out "$line"
out "NOTE: quantiles come from the proxy's histograms (buckets 0.1/0.25/0.5/1/2.5/5/10/25 ms, linear inside a bucket); max is exact."
out "NOTE: with delay $DELAY all waits share one bucket, so wait_p50/p99 are bucket estimates (capped at wait_max); wait_p50_est = delay + lateness_p50."
out "NOTE: 2 cores shared by SIPp UAC + SIPp UAS + proxy (+ anything else running); lateness includes waiting for a CPU."
out "# results: $RESULT_FILE"
((${#why[@]} == 0)) || exit 1
exit 0
