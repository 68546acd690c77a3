#!/usr/bin/env bash
# bench/reorder.sh: does the proxy keep a transaction's responses in order?
#
# Runs the b2b scenario (uas_b2b.xml sends 180 and 200 back to back, with no
# pause; uac_b2b.xml requires the 180) at a fixed rate through a fresh proxy
# and counts the calls that failed because the 200 overtook the 180: SIPp's
# "unexpected message" failures whose error-trace entry reads
#   ... while expecting '180' (index 2), received 'SIP/2.0 200 OK ...
# A proxy that forwards the responses of one transaction from several
# workers/goroutines without ordering shows a non-zero count; UDP on loopback
# does not reorder by itself (check with --direct).
#
# See bench/README.md.  Run `bench/reorder.sh --help` for the options.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

RATE=1000
CALLS=10000
CHILDREN_SET=0

usage() {
	cat <<EOF
usage: bench/reorder.sh [options]
  --proxy sipvigil|kamailio   proxy under test (default: $PROXY; bin/sipvigil is built if missing)
  --direct                    no proxy: UAC straight to UAS (baseline, expect 0)
  --children N                kamailio UDP worker processes (default: $CHILDREN)
  --rate CPS                  call rate (default: $RATE)
  --calls N                   number of calls (default: $CALLS)
  --transport udp             only udp is implemented
  --hold-ms MS                UAC pause between ACK and BYE (default: $HOLD_MS)
  --kam-shm MB                kamailio shared memory (default: $KAM_SHM_MB)
  --kam-mem fm|tlsf|qm        kamailio shm+pkg memory manager, -x/-X (default: $KAM_MEM)
  --keep                      keep the temp dir with proxy/SIPp logs and stats
EOF
}

while (($#)); do
	case $1 in
	--proxy) PROXY=${2:?}; shift 2 ;;
	--direct) PROXY=direct; shift ;;
	--children) CHILDREN=${2:?}; CHILDREN_SET=1; shift 2 ;;
	--rate) RATE=${2:?}; shift 2 ;;
	--calls) CALLS=${2:?}; shift 2 ;;
	--transport) TRANSPORT=${2:?}; shift 2 ;;
	--hold-ms) HOLD_MS=${2:?}; shift 2 ;;
	--kam-shm) KAM_SHM_MB=${2:?}; shift 2 ;;
	--kam-mem) KAM_MEM=${2:?}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" ;;
	esac
done

for v in RATE CALLS CHILDREN HOLD_MS KAM_SHM_MB; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
((RATE > 0 && CALLS > 0 && CHILDREN > 0)) || die "rate, calls and children must be > 0"
[[ $KAM_MEM =~ ^(fm|tlsf|qm)$ ]] || die "--kam-mem must be fm, tlsf or qm"
[[ $TRANSPORT == udp ]] || die "--transport $TRANSPORT: only udp is implemented"
if [[ $PROXY != kamailio ]] && ((CHILDREN_SET)); then
	log "note: --children only applies to kamailio, ignored for $PROXY"
fi

proxy_check_tools
scenario_files b2b
bench_init

RESULT_FILE="$RESULTS_DIR/$PROXY-reorder-$(date +%Y%m%d-%H%M%S).txt"
: >"$RESULT_FILE"
CHILDREN_LABEL=$CHILDREN
[[ $PROXY == kamailio ]] || CHILDREN_LABEL=na

env_header
out "# reorder: scenario=b2b (180+200 back to back, 180 mandatory) transport=$TRANSPORT rate=$RATE calls=$CALLS hold=${HOLD_MS}ms"

dir="$WORK/reorder"
mkdir -p "$dir"
duration=$(((CALLS + RATE - 1) / RATE))
tmo=$((duration * 2 + 20))
hard=$((duration * 2 + 35))

alloc_ports
log "reorder: rate=$RATE calls=$CALLS proxy=$PROXY ports proxy=$PROXY_PORT uas=$UAS_PORT uac=$UAC_PORT"
start_uas "$dir" $((hard + 30)) || die "could not start the SIPp UAS (see $dir)"
if ! start_proxy "$dir"; then
	KEEP=1
	die "could not start $PROXY (logs in $dir)"
fi
target=$PROXY_PORT
[[ $PROXY == direct ]] && target=$UAS_PORT

u0=$(udp_errors)
run_uac "$dir" "$RATE" "$CALLS" "$tmo" "$hard" "$target"
u1=$(udp_errors)
udp_drops=$(awk -v a="$u0" -v b="$u1" 'BEGIN { split(a, x, " "); split(b, y, " "); print (y[1] - x[1]) "/" (y[2] - x[2]) }')
stop_sipp
stop_proxy
kill_strays

csv="$dir/uac_stat.csv"
ok=$(stat_get "$csv" 'SuccessfulCall(C)')
failed=$(stat_get "$csv" 'FailedCall(C)')
unexpected=$(stat_get "$csv" 'FailedUnexpectedMessage(C)')
retrans=$(stat_get "$csv" 'Retransmissions(C)')
reasons=$(failure_summary "$csv")
uas_failed=$(stat_get "$dir/uas_stat.csv" 'FailedCall(C)')
ok=${ok:-0} failed=${failed:-?} unexpected=${unexpected:-?} retrans=${retrans:-?} uas_failed=${uas_failed:-?}

# The error trace names what the call was waiting for and what came instead.
reordered=0
other_unexpected=0
if [[ -s $dir/uac_errors.log ]]; then
	reordered=$(grep -c "while expecting '180' (index [0-9]*), received 'SIP/2.0 200 " "$dir/uac_errors.log" || true)
	other_unexpected=$(grep "Aborting call on unexpected message" "$dir/uac_errors.log" |
		grep -vc "while expecting '180' (index [0-9]*), received 'SIP/2.0 200 " || true)
fi
pct=$(awk -v r="$reordered" -v c="$CALLS" 'BEGIN { printf "%.3f", 100 * r / c }')
proxy_s=$(fcalc "$PROXY_TICKS / $CLK_TCK")
eff=$(awk -v ok="$ok" -v f="${failed//\?/0}" -v el="$UAC_ELAPSED" 'BEGIN { printf "%.0f", (ok + f) / el }')

out "RUN rate=$RATE calls=$CALLS ok=$ok failed=$failed unexpected=$unexpected retrans=$retrans elapsed=${UAC_ELAPSED}s eff=${eff}cps proxy_cpu=${proxy_s}s uac_rc=$UAC_RC uas_failed=$uas_failed udp_drops(rcv/snd)=$udp_drops reasons=$reasons"
out ""
out "REORDER proxy=$PROXY children=$CHILDREN_LABEL transport=$TRANSPORT rate=$RATE calls=$CALLS reordered_200_before_180=$reordered ($pct%) other_unexpected=$other_unexpected failed_total=$failed"
if [[ $failed != 0 && $failed != "$reordered" ]]; then
	out "NOTE: $failed failed calls but only $reordered were 200-before-180; the rest ($reasons) point to overload or loss, try a lower --rate."
fi
out "# results: $RESULT_FILE"
exit 0
