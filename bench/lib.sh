# shellcheck shell=bash disable=SC2034
# (SC2034: the globals set here are read by the scripts that source this file)
# Shared helpers for bench/capacity.sh, bench/reorder.sh and bench/suspend.sh.
# Sourced, not executed.  Everything runs on 127.0.0.1 only (or, with
# capacity.sh --netns, between the root namespace and a network namespace +
# veth pair that the script creates itself: netns_setup), every process we
# start is recorded and killed by PID (or by its own process group) on exit.

BENCH_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$BENCH_DIR/.." && pwd)
SIPP_DIR="$BENCH_DIR/sipp"
KAM_CFG="$BENCH_DIR/kamailio/kamailio.cfg"
RESULTS_DIR="$BENCH_DIR/results"

SIPP=${SIPP:-sipp}
KAMAILIO=${KAMAILIO:-kamailio}
SIPVIGIL_BIN=${SIPVIGIL_BIN:-$REPO_DIR/bin/sipvigil}
OTLPSINK_BIN=${OTLPSINK_BIN:-$REPO_DIR/bin/otlpsink}
CLK_TCK=$(getconf CLK_TCK)

# Tunables shared by both scripts (overridable from the command line).
PROXY=sipvigil          # sipvigil | kamailio | direct
CHILDREN=4              # kamailio UDP workers
TRANSPORT=udp
HOLD_MS=0               # UAC: pause between ACK and BYE
RING_MS=10              # basic UAS: pause between 180 and 200
KAM_SHM_MB=512          # kamailio -m (tm keeps transactions ~5s after completion)
KAM_PKG_MB=16           # kamailio -M
KAM_MEM=fm              # kamailio -x/-X memory manager: fm (fast), tlsf, or qm (Kamailio's
                        # default, with Debian's DBG_SR_MEMORY build ~3x the CPU per call)
SIPP_BUFF=8388608       # -buff_size (capped by net.core.[rw]mem_max)
RECV_TIMEOUT_MS=5000    # UAC: a call waiting longer than this for a reply fails
KEEP=0                  # keep the temp dir with all logs
SIPVIGIL_LOG_LEVEL=warn # log level of the generated sipvigil config (info: shutdown queue stats)
SIPVIGIL_EBPF=off      # ebpf.mode of the proxy under test (capacity.sh --ebpf on)
SIPVIGIL_EBPF_EXTRA=${SIPVIGIL_EBPF_EXTRA:-}  # more ebpf keys from the environment, e.g. "snaplen: 256"
SIPVIGIL_TRACING=""     # tracing section of the proxy under test (capacity.sh --tracing): "" = none,
                        # off = {enabled: false}, on = OTLP/HTTP to the per-trial otlpsink on OTLP_PORT
SIPVIGIL_TRACING_EXTRA=${SIPVIGIL_TRACING_EXTRA:-}  # more tracing keys (with on), e.g. "compression: none"
SIPVIGIL_EXTRA_YAML=""  # appended verbatim to the generated sipvigil config (queues, suspend rules)
PROXY_STOP_WAIT=5       # seconds between TERM and KILL for the proxy (sipvigil needs ~2-3 s
                        # after TERM to drain, linger and log its queue stats)

WORK=""                 # temp dir, created by bench_init
PROXY_PID=""            # pid of the proxy main process (== its pgid when setsid worked)
UAS_PID=""
UAC_PID=""              # pid of timeout(1) wrapping the UAC
SINK_PID=""             # pid of bin/otlpsink (capacity.sh --tracing on)
PROXY_PORT="" UAS_PORT="" UAC_PORT="" OTLP_PORT=""
PROXY_IP=127.0.0.1      # address the proxy listens on (the veth root end with --netns)
SIPP_IP=127.0.0.1       # SIPp -i, the UAS hop of the proxy (the veth namespace end with --netns)
SIPP_EXEC=()            # command prefix for SIPp and probes: () or (ip netns exec NS)

# Network namespace mode (capacity.sh --netns, netns_setup): SIPp UAC and UAS
# in a namespace of this run, the proxy in the root namespace on a veth pair.
NETNS=0
NETNS_NAME=""           # svbench-PID (set once setup started: netns_cleanup removes it)
NETNS_VETH_ROOT=""      # svb0-PID, root namespace end (the proxy's interface)
NETNS_VETH_NS=""        # svb1-PID, namespace end (SIPp's interface)
NETNS_ROOT_IP="" NETNS_NS_IP=""
NETNS_SYSCTLS=""        # what netns_mirror_sysctls found/set, for the header
UAS_CP="" UAC_CP="" UAS_MP="" UAC_MP=""
RESULT_FILE=""

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# out: a line of the report -> stdout and the results file
out() {
	printf '%s\n' "$*"
	if [[ -n $RESULT_FILE ]]; then printf '%s\n' "$*" >>"$RESULT_FILE"; fi
}

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "required command not found: $c"
	done
}

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }

# fcalc EXPR: floating point arithmetic through awk
fcalc() { awk "BEGIN { printf \"%.3f\", $1 }"; }

bench_init() {
	need_cmd "$SIPP" awk ss timeout setsid getconf dd
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/sipvigil-bench.XXXXXX")
	trap bench_cleanup EXIT
	trap 'log "interrupted"; exit 130' INT TERM HUP
	mkdir -p "$RESULTS_DIR"
}

# ---------------------------------------------------------------- processes

# pid_tree PID: PID and all its descendants (kamailio forks its workers)
pid_tree() {
	local root=$1
	[[ -d /proc/$root ]] || return 0
	ps -e -o pid=,ppid= | awk -v root="$root" '
		{ parent[$1] = $2; pids[NR] = $1 }
		END {
			keep[root] = 1; print root
			changed = 1
			while (changed) {
				changed = 0
				for (i in pids) { p = pids[i]
					if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; print p; changed = 1 } }
			}
		}'
}

# cpu_ticks PID...: utime+stime (clock ticks) summed over the given pids
cpu_ticks() {
	local pid line rest total=0
	local -a f
	for pid in "$@"; do
		line=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		rest=${line##*) }
		read -ra f <<<"$rest"
		total=$((total + f[11] + f[12]))
	done
	printf '%s' "$total"
}

# tree_cpu_ticks PID: CPU of a process and all its descendants
tree_cpu_ticks() {
	local -a pids
	mapfile -t pids < <(pid_tree "$1")
	if ((${#pids[@]} == 0)); then printf '0'; return; fi
	cpu_ticks "${pids[@]}"
}

# stop_pid PID [GROUP] [WAIT_S]: TERM (the process group if GROUP=1), wait up
# to WAIT_S seconds (default 5), then KILL
stop_pid() {
	local pid=$1 group=${2:-0} wait_s=${3:-5} i
	[[ -n $pid ]] || return 0
	local -a tree
	mapfile -t tree < <(pid_tree "$pid")
	if ((${#tree[@]} == 0)); then
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	if ((group)); then
		kill -TERM -- "-$pid" 2>/dev/null || true
	fi
	kill -TERM "${tree[@]}" 2>/dev/null || true
	for ((i = 0; i < wait_s * 10; i++)); do
		local alive=0 p
		for p in "${tree[@]}"; do
			if kill -0 "$p" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]]; then
				alive=1
			fi
		done
		((alive)) || break
		sleep 0.1
	done
	for p in "${tree[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	wait "$pid" 2>/dev/null || true
}

# stop_proxy: TERM the proxy, KILL it if it is still there after
# PROXY_STOP_WAIT seconds.
stop_proxy() {
	if [[ -n $PROXY_PID ]]; then
		local group=0
		[[ $(ps -o pgid= -p "$PROXY_PID" 2>/dev/null | tr -d ' ') == "$PROXY_PID" ]] && group=1
		stop_pid "$PROXY_PID" "$group" "$PROXY_STOP_WAIT"
		PROXY_PID=""
	fi
}

# kill_strays: belt and braces, after proxy and SIPp were stopped: no process
# whose command line points into this run's temp dir may survive.
kill_strays() {
	[[ -n $WORK ]] || return 0
	local -a stray=()
	mapfile -t stray < <(pgrep -f -- "$WORK/" 2>/dev/null || true)
	if ((${#stray[@]})); then
		log "WARNING: killing stray processes from $WORK: ${stray[*]}"
		kill -KILL "${stray[@]}" 2>/dev/null || true
	fi
}

stop_sipp() {
	if [[ -n $UAC_PID ]]; then stop_pid "$UAC_PID"; UAC_PID=""; fi
	if [[ -n $UAS_PID ]]; then stop_pid "$UAS_PID"; UAS_PID=""; fi
}

bench_cleanup() {
	local rc=$?
	trap - EXIT
	stop_sipp
	stop_proxy
	stop_otlpsink
	kill_strays
	netns_cleanup
	if ((rc != 0 && rc != 1)) && [[ -n $RESULT_FILE && -f $RESULT_FILE ]]; then
		printf '# ABORTED (exit %s): incomplete run, no RESULT\n' "$rc" >>"$RESULT_FILE"
	fi
	if [[ -n $WORK && -d $WORK ]]; then
		if ((KEEP)) || ((rc != 0 && rc != 1)); then
			log "logs kept in $WORK"
		else
			rm -rf -- "$WORK"
		fi
	fi
	exit "$rc"
}

# ---------------------------------------------------------------- ports

port_busy() { [[ -n $(ss -Hlnu "sport = :$1" 2>/dev/null) || -n $(ss -Hlnt "sport = :$1" 2>/dev/null) ]]; }

# alloc_ports: a block of 16 free ports below the ephemeral range, fresh for
# every trial (other people on this machine run SIPp too).
alloc_ports() {
	local try base p ok
	for ((try = 0; try < 100; try++)); do
		base=$((20000 + (RANDOM % 750) * 16))
		ok=1
		for ((p = base; p < base + 16; p++)); do
			if port_busy "$p"; then ok=0; break; fi
		done
		if ((ok)); then
			PROXY_PORT=$base UAS_PORT=$((base + 1)) UAC_PORT=$((base + 2))
			UAS_CP=$((base + 3)) UAC_CP=$((base + 4))
			UAS_MP=$((base + 6)) UAC_MP=$((base + 10))
			OTLP_PORT=$((base + 14)) # TCP, bin/otlpsink (--tracing on)
			return 0
		fi
	done
	die "no free block of 16 UDP/TCP ports found in 20000-32000"
}

# ---------------------------------------------------------------- network namespace (capacity.sh --netns)
#
# SIPp UAC and UAS run in a namespace svbench-PID; the proxy stays in the
# root namespace on the root end of a veth pair svb0-PID/svb1-PID (a /30 out
# of 10.250.0.0/16). The proxy's default eBPF interfaces are the ones owning
# its listen addresses: the veth root end only, where every SIP datagram of
# a call passes one TC hook (ingress or egress), as on a real NIC, instead
# of two on lo. Only this run's namespace and veth are ever created, sent to
# or deleted (plus leftovers of the same names whose run is dead).

NETNS_PREFIX=svbench-   # namespace svbench-PID
NETNS_VETH_PREFIX=svb   # veth svb0-PID (root end) / svb1-PID (namespace end): <= 12 chars

# netns_prune_stale: delete namespaces svbench-PID and veth ends svb[01]-PID
# (root namespace) whose PID is not running: leftovers of a run that was
# killed before its trap ran. Processes still inside such a namespace are
# left alone (only reported); deleting the veth cuts them off.
netns_prune_stale() {
	local n pid
	while read -r n _; do
		[[ $n =~ ^${NETNS_PREFIX}([0-9]+)$ ]] || continue
		pid=${BASH_REMATCH[1]}
		# (our own pid: a leftover of an earlier run that had it, not ours yet)
		[[ $pid != "$$" && -d /proc/$pid ]] && continue
		local left
		left=$(ip netns pids "$n" 2>/dev/null | tr '\n' ' ')
		log "removing leftover namespace $n (pid $pid is gone)${left:+; processes still in it: $left}"
		ip -n "$n" link del "${NETNS_VETH_PREFIX}1-$pid" 2>/dev/null || true
		ip netns del "$n" 2>/dev/null || log "WARNING: could not delete namespace $n"
	done < <(ip netns list 2>/dev/null)
	while read -r n; do
		[[ $n =~ ^${NETNS_VETH_PREFIX}[01]-([0-9]+)$ ]] || continue
		pid=${BASH_REMATCH[1]}
		[[ $pid != "$$" && -d /proc/$pid ]] && continue
		log "removing leftover veth $n (pid $pid is gone)"
		ip link del "$n" 2>/dev/null || log "WARNING: could not delete link $n"
	done < <(ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }')
}

# netns_subnet_free X: succeed when 10.250.X.0/30 overlaps no IPv4 address
# or route (any table) of the root namespace, the default route aside.
netns_subnet_free() {
	local x=$1
	{
		ip -o -4 addr show 2>/dev/null | awk '{ print $4 }'
		ip -4 route show table all 2>/dev/null | awk '{
			d = $1
			if (d ~ /^(unicast|local|broadcast|multicast|unreachable|blackhole|prohibit|throw|anycast|nat)$/) d = $2
			if (d != "default") print d }'
	} | awk -v cand="10.250.$x.0" '
		function ip2n(s,   a) { split(s, a, "."); return ((a[1] * 256 + a[2]) * 256 + a[3]) * 256 + a[4] }
		BEGIN { c = ip2n(cand) }
		$1 ~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(\/[0-9]+)?$/ {
			n = split($1, p, "/"); len = (n == 2 ? p[2] + 0 : 32)
			m = (len < 30 ? len : 30); size = 2 ^ (32 - m)
			if (int(ip2n(p[1]) / size) == int(c / size)) busy = 1
		}
		END { exit busy }'
}

# netns_mirror_sysctls: give the namespace the root namespace's socket
# buffer limits (SIPp's -buff_size is capped by net.core.[rw]mem_max).
# On this 6.18 kernel net.core.rmem_max/wmem_max/rmem_default/wmem_default
# are global: a namespace shows them read-only (mode 0444) with the host's
# values, so they need nothing and are checked only. net.core.optmem_max
# and net.ipv4.udp_[rw]mem_min are per namespace: copied when they differ.
# Keys the namespace does not show at all are global too.
# Sets NETNS_SYSCTLS ("key=value[(global)|(set)] ...") for the header.
netns_mirror_sysctls() {
	local k f host nsv tag
	NETNS_SYSCTLS=""
	for k in net.core.rmem_max net.core.wmem_max net.core.rmem_default net.core.wmem_default \
		net.core.optmem_max net.ipv4.udp_rmem_min net.ipv4.udp_wmem_min; do
		f=/proc/sys/${k//.//}
		host=$(sysctl -n "$k" 2>/dev/null) || continue
		tag=""
		if ! nsv=$(ip netns exec "$NETNS_NAME" sysctl -n "$k" 2>/dev/null); then
			tag="(global)"
		elif ! ip netns exec "$NETNS_NAME" test -w "$f"; then
			tag="(global)"
			[[ $nsv == "$host" ]] || die "--netns: $k is $nsv in $NETNS_NAME (read-only there) but $host on the host"
		elif [[ $nsv != "$host" ]]; then
			ip netns exec "$NETNS_NAME" sysctl -q -w "$k=$host" >/dev/null 2>&1 ||
				die "--netns: could not set $k=$host in $NETNS_NAME (it has $nsv)"
			nsv=$(ip netns exec "$NETNS_NAME" sysctl -n "$k" 2>/dev/null)
			[[ $nsv == "$host" ]] || die "--netns: $k is $nsv in $NETNS_NAME after setting $host"
			tag="(set)"
		fi
		NETNS_SYSCTLS+="${NETNS_SYSCTLS:+ }$k=${host//[[:space:]]/,}$tag"
	done
}

# netns_setup: create this run's namespace and veth pair (root, once per
# script run, after bench_init so that the EXIT trap removes them) and point
# PROXY_IP, SIPP_IP and SIPP_EXEC at them.
netns_setup() {
	((EUID == 0)) || die "--netns needs root (ip netns add, veth)"
	need_cmd ip sysctl
	netns_prune_stale
	local x="" i try
	for ((i = 0; i < 256; i++)); do
		try=$((($$ + i) % 256))
		if netns_subnet_free "$try"; then x=$try; break; fi
	done
	[[ -n $x ]] || die "--netns: no free /30 in 10.250.0.0/16 (every 10.250.X.0/30 overlaps an address or route)"
	NETNS_ROOT_IP=10.250.$x.1 NETNS_NS_IP=10.250.$x.2
	local ns=${NETNS_PREFIX}$$ v0=${NETNS_VETH_PREFIX}0-$$ v1=${NETNS_VETH_PREFIX}1-$$
	((${#v0} <= 15)) || die "--netns: interface name $v0 too long"
	# names first: from here on netns_cleanup (EXIT trap) deletes what exists
	NETNS_NAME=$ns NETNS_VETH_ROOT=$v0 NETNS_VETH_NS=$v1
	[[ ! -e /run/netns/$ns ]] || die "--netns: namespace $ns already exists"
	ip netns add "$ns" || die "--netns: ip netns add $ns failed"
	ip link add "$v0" type veth peer name "$v1" netns "$ns" || die "--netns: could not create veth $v0/$v1"
	# no IPv6 on the pair: no DAD / router solicitations through the hooks
	printf 1 >"/proc/sys/net/ipv6/conf/$v0/disable_ipv6" 2>/dev/null || true
	ip netns exec "$ns" sh -c "printf 1 >/proc/sys/net/ipv6/conf/$v1/disable_ipv6" 2>/dev/null || true
	ip addr add "$NETNS_ROOT_IP/30" dev "$v0" || die "--netns: ip addr add $NETNS_ROOT_IP/30 dev $v0 failed"
	ip -n "$ns" addr add "$NETNS_NS_IP/30" dev "$v1" || die "--netns: ip addr add $NETNS_NS_IP/30 in $ns failed"
	ip link set "$v0" up || die "--netns: ip link set $v0 up failed"
	ip -n "$ns" link set lo up || die "--netns: lo up in $ns failed"
	ip -n "$ns" link set "$v1" up || die "--netns: ip link set $v1 up in $ns failed"
	# static neighbours: no ARP through the hooks, no ARP wait on a first packet
	local mac0 mac1
	mac0=$(cat "/sys/class/net/$v0/address")
	mac1=$(ip -n "$ns" -o link show "$v1" | awk '{ for (i = 1; i < NF; i++) if ($i == "link/ether") { print $(i + 1); exit } }')
	[[ -n $mac0 && -n $mac1 ]] || die "--netns: could not read the veth MAC addresses"
	ip neigh replace "$NETNS_NS_IP" lladdr "$mac1" dev "$v0" nud permanent || die "--netns: static neighbour on $v0 failed"
	ip -n "$ns" neigh replace "$NETNS_ROOT_IP" lladdr "$mac0" dev "$v1" nud permanent || die "--netns: static neighbour in $ns failed"
	# Offloads: nothing here merges datagrams (SIPp sets neither UDP_SEGMENT
	# nor UDP_GRO, and veth does no GRO without XDP / NAPI). Turned off
	# anyway when ethtool exists; bpf_runs_per_call shows any merging.
	if command -v ethtool >/dev/null 2>&1; then
		ethtool -K "$v0" gro off gso off tso off >/dev/null 2>&1 || true
		ip netns exec "$ns" ethtool -K "$v1" gro off gso off tso off >/dev/null 2>&1 || true
	fi
	netns_mirror_sysctls
	# sanity: the namespace reaches the proxy's address over the veth, and
	# the root namespace reaches SIPp's over it
	ip -n "$ns" route get "$NETNS_ROOT_IP" 2>/dev/null | grep -q " dev $v1 " ||
		die "--netns: $NETNS_ROOT_IP is not routed over $v1 inside $ns"
	ip route get "$NETNS_NS_IP" 2>/dev/null | grep -q " dev $v0 " ||
		die "--netns: $NETNS_NS_IP is not routed over $v0"
	PROXY_IP=$NETNS_ROOT_IP SIPP_IP=$NETNS_NS_IP
	SIPP_EXEC=(ip netns exec "$ns")
	log "netns: SIPp in $ns ($v1 $NETNS_NS_IP/30), proxy on $v0 $NETNS_ROOT_IP/30"
}

# netns_cleanup: delete this run's veth pair and namespace (EXIT trap, after
# SIPp was stopped). Processes still in the namespace are ours: killed.
netns_cleanup() {
	[[ -n $NETNS_NAME ]] || return 0
	local -a left=()
	mapfile -t left < <(ip netns pids "$NETNS_NAME" 2>/dev/null || true)
	if ((${#left[@]})); then
		log "WARNING: killing processes left in $NETNS_NAME: ${left[*]}"
		kill -KILL "${left[@]}" 2>/dev/null || true
	fi
	# deleting one end deletes both
	if ip link show "$NETNS_VETH_ROOT" >/dev/null 2>&1; then
		ip link del "$NETNS_VETH_ROOT" 2>/dev/null || log "WARNING: could not delete veth $NETNS_VETH_ROOT"
	fi
	if [[ -e /run/netns/$NETNS_NAME ]]; then
		ip netns del "$NETNS_NAME" 2>/dev/null || log "WARNING: could not delete namespace $NETNS_NAME"
	fi
	NETNS_NAME=""
	SIPP_EXEC=()
}

# ---------------------------------------------------------------- SIP probe

# sip_probe PORT [HOST [VIA_HOST]]: send OPTIONS with Max-Forwards: 0
# (answered by the proxy itself, never forwarded) to HOST:PORT (default
# 127.0.0.1) and succeed on any SIP response within 1s. VIA_HOST (default
# 127.0.0.1) is the sender's address in Via/From/Call-ID.
sip_probe() {
	local port=$1 host=${2:-127.0.0.1} via=${3:-127.0.0.1} msg reply="" fd
	msg=$(printf 'OPTIONS sip:probe@%s:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:9;rport;branch=z9hG4bKbenchprobe%s\r\nFrom: <sip:probe@%s>;tag=probe%s\r\nTo: <sip:probe@%s:%s>\r\nCall-ID: benchprobe-%s-%s@%s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 0\r\nContent-Length: 0\r\n\r\n_' \
		"$host" "$port" "$via" "$RANDOM$RANDOM" "$via" "$RANDOM" "$host" "$port" "$$" "$RANDOM$RANDOM" "$via")
	msg=${msg%_}
	exec {fd}<>"/dev/udp/$host/$port" || return 1
	# one write() == one datagram: dd collects the whole message (fullblock)
	# and writes it once; printf alone may write line by line (it does
	# under `bash -c`, as proxy_probe runs it inside the namespace)
	{ printf '%s' "$msg" | dd bs=65535 count=1 iflag=fullblock status=none >&"$fd"; } 2>/dev/null || true
	reply=$(timeout 1 dd bs=65535 count=1 status=none <&"$fd" 2>/dev/null | head -n1) || true
	exec {fd}>&-
	[[ $reply == SIP/2.0* ]]
}

# proxy_probe PORT: sip_probe the proxy at PROXY_IP:PORT from where SIPp
# runs. With --netns that is inside the namespace, so the probe crosses the
# veth like the calls (from the root namespace, a datagram to the veth's own
# address would go over lo, past the proxy's eBPF programs: unmatched).
proxy_probe() {
	local port=$1
	if ((${#SIPP_EXEC[@]} == 0)); then
		sip_probe "$port" "$PROXY_IP" "$SIPP_IP"
		return
	fi
	"${SIPP_EXEC[@]}" bash -c "$(declare -f sip_probe)"'; sip_probe "$@"' sip_probe "$port" "$PROXY_IP" "$SIPP_IP"
}

# ---------------------------------------------------------------- proxies

ensure_sipvigil() {
	[[ -x $SIPVIGIL_BIN ]] && return 0
	log "bin/sipvigil missing, building it"
	if make -C "$REPO_DIR" -n build >/dev/null 2>&1; then
		make -C "$REPO_DIR" build >&2 || die "make build failed"
	else
		need_cmd go
		(cd "$REPO_DIR" && go build -o bin/sipvigil ./cmd/sipvigil) >&2 || die "go build ./cmd/sipvigil failed"
	fi
	[[ -x $SIPVIGIL_BIN ]] || die "$SIPVIGIL_BIN still missing after build"
}

proxy_check_tools() {
	case $PROXY in
	kamailio)
		need_cmd "$KAMAILIO"
		[[ -r $KAM_CFG ]] || die "missing $KAM_CFG"
		;;
	sipvigil) ensure_sipvigil ;;
	direct) ;;
	*) die "unknown --proxy $PROXY (sipvigil|kamailio|direct)" ;;
	esac
}

# start_proxy DIR: start a fresh proxy listening on PROXY_IP:PROXY_PORT,
# relaying to SIPP_IP:UAS_PORT
start_proxy() {
	local dir=$1 i
	mkdir -p "$dir"
	case $PROXY in
	direct) return 0 ;;
	kamailio)
		# kamailio.cfg has 127.0.0.1 built in (capacity.sh refuses --netns with it)
		[[ $PROXY_IP == 127.0.0.1 && $SIPP_IP == 127.0.0.1 ]] || { log "kamailio: bench/kamailio/kamailio.cfg only knows 127.0.0.1"; return 1; }
		mkdir -p "$dir/run"
		# setsid: own process group, so the workers can be stopped as a unit
		setsid "$KAMAILIO" -f "$KAM_CFG" -DD -E -Y "$dir/run" -P "$dir/run/kamailio.pid" \
			-m "$KAM_SHM_MB" -M "$KAM_PKG_MB" -x "$KAM_MEM" -X "$KAM_MEM" \
			-A "LISTEN_PORT=$PROXY_PORT" -A "UAS_PORT=$UAS_PORT" -A "KAM_CHILDREN=$CHILDREN" \
			</dev/null >"$dir/proxy.log" 2>&1 &
		PROXY_PID=$!
		;;
	sipvigil)
		cat >"$dir/sipvigil.yaml" <<-EOF
			listen: [{address: $PROXY_IP:$PROXY_PORT, transports: [udp]}]
			log: {level: $SIPVIGIL_LOG_LEVEL}
			destinations: {uas: {hops: [$SIPP_IP:$UAS_PORT;transport=udp]}}
			routes: [{name: default, to: uas}]
			ebpf: {mode: $SIPVIGIL_EBPF${SIPVIGIL_EBPF_EXTRA:+, $SIPVIGIL_EBPF_EXTRA}}
		EOF
		case $SIPVIGIL_TRACING in
		on)
			[[ -n $OTLP_PORT ]] || { log "tracing on but no OTLP_PORT"; return 1; }
			printf 'tracing: {endpoint: "127.0.0.1:%s", insecure: true, sample_ratio: 1.0%s}\n' \
				"$OTLP_PORT" "${SIPVIGIL_TRACING_EXTRA:+, $SIPVIGIL_TRACING_EXTRA}" >>"$dir/sipvigil.yaml"
			;;
		off) printf 'tracing: {enabled: false}\n' >>"$dir/sipvigil.yaml" ;;
		esac
		if [[ -n $SIPVIGIL_EXTRA_YAML ]]; then
			printf '%s\n' "$SIPVIGIL_EXTRA_YAML" >>"$dir/sipvigil.yaml"
		fi
		setsid "$SIPVIGIL_BIN" serve --config "$dir/sipvigil.yaml" </dev/null >"$dir/proxy.log" 2>&1 &
		PROXY_PID=$!
		;;
	esac
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$PROXY_PID" 2>/dev/null; then
			log "proxy exited during startup; last log lines:"
			tail -n 20 "$dir/proxy.log" >&2 || true
			PROXY_PID=""
			return 1
		fi
		if proxy_probe "$PROXY_PORT"; then return 0; fi
		sleep 0.1
	done
	log "proxy did not answer on $PROXY_IP:$PROXY_PORT within ~10s; last log lines:"
	tail -n 20 "$dir/proxy.log" >&2 || true
	return 1
}

# sipvigil_require_queues: die unless SIPVIGIL_BIN knows suspend queues. A
# bin/sipvigil built before them is not rebuilt by ensure_sipvigil (it only
# builds a missing binary) and would refuse the config at startup.
sipvigil_require_queues() {
	"$SIPVIGIL_BIN" default-config 2>/dev/null | grep -q '^queues:' ||
		die "$SIPVIGIL_BIN has no suspend queues (built before them?): rebuild it with 'make build' or set SIPVIGIL_BIN"
}

# queue_stats LOG QUEUE: the key=value fields of the last "queue stats" line
# that sipvigil logged for QUEUE at shutdown (log level info), one per line
# ("enqueued=5000", "late_p99=0.412ms", ...); nothing when there is none.
queue_stats() {
	local logf=$1 queue=$2
	[[ -r $logf ]] || return 0
	awk -v q="queue=$queue" '
		/msg="queue stats"/ { for (i = 1; i <= NF; i++) if ($i == q) line = $0 }
		END {
			if (line == "") exit
			n = split(line, f, " ")
			for (i = 1; i <= n; i++) if (f[i] ~ /^[a-z_0-9]+=/ && f[i] !~ /^(time|level|msg|queue)=/) print f[i]
		}' "$logf"
}

# kv_get KEY < lines of key=value: the value of KEY
kv_get() { awk -F= -v k="$1" '$1 == k { sub(/^[^=]*=/, ""); print; exit }'; }

proxy_cpu_ticks() {
	if [[ -n $PROXY_PID ]]; then tree_cpu_ticks "$PROXY_PID"; else printf '0'; fi
}

# ---------------------------------------------------------------- SIPp

# scenario_files SCENARIO -> sets UAC_XML UAS_XML
scenario_files() {
	case $1 in
	basic) UAC_XML=$SIPP_DIR/uac.xml UAS_XML=$SIPP_DIR/uas.xml ;;
	b2b) UAC_XML=$SIPP_DIR/uac_b2b.xml UAS_XML=$SIPP_DIR/uas_b2b.xml ;;
	reinvite) UAC_XML=$SIPP_DIR/uac_reinvite.xml UAS_XML=$SIPP_DIR/uas_reinvite.xml ;;
	message) UAC_XML=$SIPP_DIR/uac_message.xml UAS_XML=$SIPP_DIR/uas_message.xml ;;
	*) die "unknown scenario $1 (basic|b2b|reinvite|message)" ;;
	esac
	[[ -r $UAC_XML && -r $UAS_XML ]] || die "missing SIPp scenario files in $SIPP_DIR"
}

sipp_common_args() {
	printf '%s\n' -i "$SIPP_IP" -t u1 -nostdin -buff_size "$SIPP_BUFF" -max_socket 1024 \
		-trace_err -trace_stat -fd 1
}

# start_uas DIR HARD_TIMEOUT_S
start_uas() {
	local dir=$1 tmo=$2 i
	local -a common
	mapfile -t common < <(sipp_common_args)
	# (ip netns exec execs SIPp: UAS_PID is SIPp's own pid, as without --netns)
	"${SIPP_EXEC[@]}" "$SIPP" -sf "$UAS_XML" "${common[@]}" -p "$UAS_PORT" -cp "$UAS_CP" -mp "$UAS_MP" \
		-d "$RING_MS" -error_file "$dir/uas_errors.log" -stf "$dir/uas_stat.csv" \
		-timeout "${tmo}s" </dev/null >"$dir/uas_screen.log" 2>&1 &
	UAS_PID=$!
	for ((i = 0; i < 50; i++)); do
		kill -0 "$UAS_PID" 2>/dev/null || { log "SIPp UAS died: $(tail -n 3 "$dir/uas_screen.log")"; UAS_PID=""; return 1; }
		[[ -n $("${SIPP_EXEC[@]}" ss -Hlnu "sport = :$UAS_PORT" 2>/dev/null) ]] && return 0
		sleep 0.1
	done
	log "SIPp UAS not listening on $UAS_PORT"
	return 1
}

# run_uac DIR RATE CALLS SIPP_TIMEOUT_S HARD_TIMEOUT_S TARGET_PORT [TARGET_HOST]
# (TARGET_HOST default PROXY_IP)
# Sets UAC_RC, UAC_ELAPSED (s), UAC_CPU_TICKS (sampled), PROXY_TICKS, UAS_TICKS
run_uac() {
	local dir=$1 rate=$2 calls=$3 tmo=$4 hard=$5 target=$6 thost=${7:-$PROXY_IP}
	local -a common
	mapfile -t common < <(sipp_common_args)
	local p0 p1 s0 s1 t0 t1 sipp_pid="" last=0 cur
	p0=$(proxy_cpu_ticks)
	s0=$(cpu_ticks "$UAS_PID")
	t0=$(now)
	# timeout(1) forks one child that (ip netns exec and then) SIPp execs in:
	# the child's pid is SIPp's
	timeout -k 5 "$hard" "${SIPP_EXEC[@]}" "$SIPP" -sf "$UAC_XML" "${common[@]}" -s uas \
		-p "$UAC_PORT" -cp "$UAC_CP" -mp "$UAC_MP" -d "$HOLD_MS" \
		-r "$rate" -rp 1000 -m "$calls" -l $((rate * 10 + 1000)) \
		-recv_timeout "$RECV_TIMEOUT_MS" -timeout "${tmo}s" -timeout_error \
		-error_file "$dir/uac_errors.log" -stf "$dir/uac_stat.csv" \
		"$thost:$target" </dev/null >"$dir/uac_screen.log" 2>&1 &
	UAC_PID=$!
	# the UAC's own CPU can only be read while it lives: sample it
	while kill -0 "$UAC_PID" 2>/dev/null; do
		[[ -n $sipp_pid ]] || sipp_pid=$(pgrep -P "$UAC_PID" 2>/dev/null | head -n1 || true)
		if [[ -n $sipp_pid ]]; then
			cur=$(cpu_ticks "$sipp_pid")
			((cur > last)) && last=$cur
		fi
		sleep 0.2
	done
	UAC_RC=0
	wait "$UAC_PID" || UAC_RC=$?
	UAC_PID=""
	t1=$(now)
	p1=$(proxy_cpu_ticks)
	s1=$(cpu_ticks "$UAS_PID")
	UAC_ELAPSED=$(fcalc "$t1 - $t0")
	UAC_CPU_TICKS=$last
	PROXY_TICKS=$((p1 - p0))
	UAS_TICKS=$((s1 - s0))
}

# udp_errors: "RcvbufErrors SndbufErrors" from /proc/net/snmp (host-wide
# counters: on loopback a receive-buffer drop is the usual cause of SIP
# retransmissions at high rates). The counters are per network namespace:
# with --netns the namespace's (SIPp's sockets) are added to the root's.
udp_errors() {
	# shellcheck disable=SC2016  # an awk program
	local prog='$1 == "Udp:" { if (!hdr) { for (i = 2; i <= NF; i++) h[$i] = i; hdr = 1 }
		else { print $(h["RcvbufErrors"]) + 0, $(h["SndbufErrors"]) + 0; exit } }'
	local root ns=""
	root=$(awk "$prog" /proc/net/snmp)
	# /proc/net is /proc/self/net: read by a process inside the namespace
	[[ -n $NETNS_NAME ]] && ns=$(ip netns exec "$NETNS_NAME" awk "$prog" /proc/net/snmp 2>/dev/null)
	awk -v a="$root" -v b="${ns:-0 0}" 'BEGIN { split(a, x, " "); split(b, y, " "); print x[1] + y[1], x[2] + y[2] }'
}

# stat_get CSV COLUMN: value of COLUMN in the last row of a SIPp -trace_stat file
stat_get() {
	local csv=$1 col=$2
	[[ -s $csv ]] || { printf ''; return; }
	awk -F';' -v col="$col" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		{ last = $0 }
		END { if (c && last != "") { n = split(last, f, ";"); print f[c] } }' "$csv"
}

# failure_summary CSV: the non-zero Failed* counters, e.g. "FailedMaxUDPRetrans=12"
failure_summary() {
	local csv=$1
	[[ -s $csv ]] || { printf 'no-stats'; return; }
	awk -F';' '
		NR == 1 { for (i = 1; i <= NF; i++) h[i] = $i; next }
		{ last = $0 }
		END {
			n = split(last, f, ";"); s = ""
			for (i = 1; i <= n; i++)
				if (h[i] ~ /^(Failed[A-Za-z]+|FatalErrors|WatchdogMajor|WatchdogMinor)\(C\)$/ && h[i] != "FailedCall(C)" && f[i] + 0 > 0) {
					name = h[i]; sub(/\(C\)$/, "", name); s = s (s ? "," : "") name "=" f[i]
				}
			print (s ? s : "-")
		}' "$csv"
}

env_header() {
	out "# sipvigil bench $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	out "# host: $(uname -srm), $(nproc) cpus, loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	out "# sipp: $("$SIPP" -v 2>&1 | awk 'NF { v = $2; sub(/[.]$/, "", v); print v; exit }'), net.core.rmem_max=$(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo '?') wmem_max=$(cat /proc/sys/net/core/wmem_max 2>/dev/null || echo '?')"
	if [[ -n $NETNS_NAME ]]; then
		out "# netns: on (veth, SIPp in $NETNS_NAME, proxy on $NETNS_VETH_ROOT $NETNS_ROOT_IP)"
		out "# netns: SIPp on $NETNS_VETH_NS $NETNS_NS_IP/30 inside $NETNS_NAME; proxy $NETNS_ROOT_IP/30 in the root namespace; no IPv6, static neighbours (no ARP); sysctls in the namespace: ${NETNS_SYSCTLS:-none}"
	else
		out "# netns: off (SIPp and proxy on 127.0.0.1, lo)"
	fi
	case $PROXY in
	kamailio) out "# proxy: $("$KAMAILIO" -v 2>/dev/null | awk 'NR == 1 { print $2, $3 }') children=$CHILDREN shm=${KAM_SHM_MB}MB mem=${KAM_MEM:-default}" ;;
	sipvigil) out "# proxy: sipvigil $SIPVIGIL_BIN (git $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO_DIR" diff --quiet 2>/dev/null || echo '+dirty')) GOMAXPROCS=${GOMAXPROCS:-default}" ;;
	direct) out "# proxy: none (--direct: SIPp UAC -> SIPp UAS, measures SIPp's own ceiling)" ;;
	esac
	local load
	load=$(cut -d' ' -f1 /proc/loadavg)
	if awk -v l="$load" 'BEGIN { exit !(l > 1.0) }'; then
		out "# WARNING: load average $load before starting: other work is running, numbers will be noisy"
	fi
}

# ---------------------------------------------------------------- eBPF (sipvigil ebpf.mode on)

# sipvigil_require_ebpf: die unless SIPVIGIL_BIN knows the ebpf config section.
sipvigil_require_ebpf() {
	"$SIPVIGIL_BIN" default-config 2>/dev/null | grep -q '^ebpf:' ||
		die "$SIPVIGIL_BIN has no eBPF capture (built before it?): rebuild it with 'make build' or set SIPVIGIL_BIN"
}

# ebpf_stats LOG: the key=value fields of the last "ebpf stats" line sipvigil
# logged at shutdown (log level info), one per line ("matched=42",
# "ring_drops=0", ...); nothing when there is none (proxy killed, or the
# capture was not attached).
ebpf_stats() {
	local logf=$1
	[[ -r $logf ]] || return 0
	awk '
		/msg="ebpf stats"/ { line = $0 }
		END {
			if (line == "") exit
			n = split(line, f, " ")
			for (i = 1; i <= n; i++) if (f[i] ~ /^[a-z_0-9]+=/ && f[i] !~ /^(time|level|msg)=/) print f[i]
		}' "$logf"
}

# sipvigil_ebpf_ifaces LOG: the interfaces the capture attached to, from the
# startup line msg="eBPF kernel timestamps enabled" (log level info), comma
# separated ("lo", "svb0-123"); nothing when there is no such line.
sipvigil_ebpf_ifaces() {
	local logf=$1
	[[ -r $logf ]] || return 0
	awk '/msg="eBPF kernel timestamps enabled"/ {
			if (match($0, /interfaces="?\[[^]]*\]/)) {
				v = substr($0, RSTART, RLENGTH); sub(/^interfaces="?\[/, "", v); sub(/\]$/, "", v)
				gsub(/ +/, ",", v); print v; exit
			}
		}' "$logf"
}

# proxy_bpf_prog_ids: ids of the BPF programs the proxy holds open (its
# program and link fds say "prog_id:" in /proc/PID/fdinfo; bpftool here has
# no pid column). Needs root to read another process's fdinfo; sorted, unique.
proxy_bpf_prog_ids() {
	[[ -n $PROXY_PID && -d /proc/$PROXY_PID/fdinfo ]] || return 0
	local -a pids
	mapfile -t pids < <(pid_tree "$PROXY_PID")
	local p
	for p in "${pids[@]}"; do
		awk '$1 == "prog_id:" && $2 > 0 { print $2 }' "/proc/$p/fdinfo/"* 2>/dev/null || true
	done | sort -nu
}

# bpf_prog_snapshot ID...: one line per program, "ID NAME RUN_CNT RUN_TIME_NS",
# from `bpftool -j prog show id ID`. run_cnt/run_time_ns only move while
# kernel.bpf_stats_enabled=1 and bpftool omits them at 0: printed as 0 then.
bpf_prog_snapshot() {
	local id j name cnt ns
	for id in "$@"; do
		j=$(bpftool -j prog show id "$id" 2>/dev/null) || continue
		# (sed, not grep: a missing key must not fail under pipefail)
		name=$(sed -n 's/.*"name":"\([^"]*\)".*/\1/p' <<<"$j")
		cnt=$(sed -n 's/.*"run_cnt":\([0-9]*\).*/\1/p' <<<"$j")
		ns=$(sed -n 's/.*"run_time_ns":\([0-9]*\).*/\1/p' <<<"$j")
		printf '%s %s %s %s\n' "$id" "${name:-?}" "${cnt:-0}" "${ns:-0}"
	done
}

# foreign_sipcap_progs: how many sipcap_* BPF programs are loaded that the
# proxy under test does not hold (another sipvigil on this host, e.g. e2e
# tests with eBPF): they run on every lo packet too, so an "ebpf off" trial
# is then not BPF-free. Prints nothing when bpftool is missing or fails.
foreign_sipcap_progs() {
	command -v bpftool >/dev/null 2>&1 || return 0
	local j
	j=$(bpftool -j prog show 2>/dev/null) || return 0
	local -a ours
	mapfile -t ours < <(proxy_bpf_prog_ids)
	{
		printf 'OURS %s\n' "${ours[@]}"
		# bpftool -j prints "id", "type", "name" first in every program object
		{ grep -o '"id":[0-9]*,"type":"[^"]*","name":"sipcap_[a-z_]*"' <<<"$j" || true; } |
			sed 's/^"id":\([0-9]*\),.*"name":"\([^"]*\)"$/PROG \1 \2/'
	} | awk '$1 == "OURS" { o[$2] = 1; next } $1 == "PROG" && !($2 in o) { n++ } END { print n + 0 }'
}

# ---------------------------------------------------------------- tracing (sipvigil tracing section)

# sipvigil_require_tracing: die unless SIPVIGIL_BIN knows the tracing config section.
sipvigil_require_tracing() {
	"$SIPVIGIL_BIN" default-config 2>/dev/null | grep -q '^tracing:' ||
		die "$SIPVIGIL_BIN has no tracing (built before it?): rebuild it with 'make build' or set SIPVIGIL_BIN"
}

# ensure_otlpsink: build bin/otlpsink (bench/otlpsink, standard library only) if missing.
ensure_otlpsink() {
	[[ -x $OTLPSINK_BIN ]] && return 0
	need_cmd go
	log "$OTLPSINK_BIN missing, building it"
	(cd "$REPO_DIR" && go build -o "$OTLPSINK_BIN" ./bench/otlpsink) >&2 || die "go build ./bench/otlpsink failed"
	[[ -x $OTLPSINK_BIN ]] || die "$OTLPSINK_BIN still missing after build"
}

# start_otlpsink DIR: bin/otlpsink on 127.0.0.1:OTLP_PORT (TCP), output in
# DIR/otlpsink.log; waits until it listens.
start_otlpsink() {
	local dir=$1 i
	"$OTLPSINK_BIN" -port "$OTLP_PORT" </dev/null >"$dir/otlpsink.log" 2>&1 &
	SINK_PID=$!
	for ((i = 0; i < 50; i++)); do
		kill -0 "$SINK_PID" 2>/dev/null || { log "otlpsink died: $(tail -n 3 "$dir/otlpsink.log")"; SINK_PID=""; return 1; }
		[[ -n $(ss -Hlnt "sport = :$OTLP_PORT" 2>/dev/null) ]] && return 0
		sleep 0.1
	done
	log "otlpsink not listening on 127.0.0.1:$OTLP_PORT"
	return 1
}

# stop_otlpsink: TERM (it prints its counts and exits), KILL after 5 s.
# Stop it after the proxy: the proxy flushes its spans when it exits.
stop_otlpsink() {
	if [[ -n $SINK_PID ]]; then stop_pid "$SINK_PID" 0 5; SINK_PID=""; fi
}

# otlpsink_counts LOG: "requests=N bytes=N rejected=N" from the sink's exit
# line, one per line; nothing when it did not print one (killed).
otlpsink_counts() {
	local logf=$1
	[[ -r $logf ]] || return 0
	awk '/^otlpsink requests=/ { line = $0 }
		END { if (line == "") exit; n = split(line, f, " "); for (i = 2; i <= n; i++) print f[i] }' "$logf"
}

# sipvigil_stats LOG MSG: the key=value fields of the last line sipvigil
# logged with msg="MSG" (e.g. "tracing stats", "evidence stats"; log level
# info, at shutdown), one per line; nothing when there is none. Quoted
# values with spaces (violations="map[a:1 b:2]") are not split correctly:
# read only plain counters from it.
sipvigil_stats() {
	local logf=$1 msg=$2
	[[ -r $logf ]] || return 0
	awk -v m="msg=\"$msg\"" '
		index($0, m) { line = $0 }
		END {
			if (line == "") exit
			n = split(line, f, " ")
			for (i = 1; i <= n; i++) if (f[i] ~ /^[a-z_0-9]+=/ && f[i] !~ /^(time|level|msg)=/) print f[i]
		}' "$logf"
}

# ---- comparing two capacity searches (ebpf.sh, trace.sh) ----
# The caller sets KEEP, NETNS and EXTRA (capacity.sh options for every
# run) and calls compare_init; run_capacity keeps CHILD_PID for the trap.

# compare_init NAME: folds a --netns in EXTRA into NETNS and passes it to
# capacity.sh first; sets CAP, TMPD, RESULT_FILE (results/sipvigil-NAME-*)
# and an EXIT trap that stops a running capacity.sh (its own trap stops
# its proxy, sink and SIPp on TERM), calls compare_on_exit if the caller
# defines it, marks an aborted results file and removes TMPD.
compare_init() {
	local name=$1 rest=() a
	for a in "${EXTRA[@]}"; do
		if [[ $a == --netns ]]; then NETNS=1; else rest+=("$a"); fi
	done
	if ((NETNS)); then
		need_cmd ip
		EXTRA=(--netns "${rest[@]}")
	fi
	CAP=$BENCH_DIR/capacity.sh
	TMPD=$(mktemp -d "${TMPDIR:-/tmp}/sipvigil-$name.XXXXXX")
	CHILD_PID=""
	mkdir -p "$RESULTS_DIR"
	RESULT_FILE="$RESULTS_DIR/sipvigil-$name-$(date +%Y%m%d-%H%M%S).txt"
	: >"$RESULT_FILE"
	trap compare_cleanup EXIT
	trap 'log "interrupted"; exit 130' INT TERM HUP
}

# shellcheck disable=SC2317  # called by the EXIT trap
compare_cleanup() {
	local rc=$?
	trap - EXIT
	if [[ -n $CHILD_PID ]] && kill -0 "$CHILD_PID" 2>/dev/null; then
		kill -TERM "$CHILD_PID" 2>/dev/null || true
		wait "$CHILD_PID" 2>/dev/null || true
	fi
	CHILD_PID=""
	if declare -F compare_on_exit >/dev/null; then compare_on_exit; fi
	if ((rc != 0 && rc != 1)); then
		printf '# ABORTED (exit %s): incomplete run\n' "$rc" >>"$RESULT_FILE"
	fi
	rm -rf -- "$TMPD"
	exit "$rc"
}

# run_capacity NAME ARGS...: bench/capacity.sh ARGS, its report shown live
# and kept in TMPD/NAME.out; sets CAP_RC
run_capacity() {
	local name=$1
	shift
	local outf="$TMPD/$name.out" keep=()
	((KEEP)) && keep=(--keep)
	: >"$outf"
	log "== $name: capacity.sh $*${EXTRA[*]:+ ${EXTRA[*]}}"
	"$CAP" "$@" "${keep[@]}" "${EXTRA[@]}" </dev/null >"$outf" &
	CHILD_PID=$!
	tail -n +1 -f --pid="$CHILD_PID" "$outf" &
	local tail_pid=$!
	CAP_RC=0
	wait "$CHILD_PID" || CAP_RC=$?
	CHILD_PID=""
	wait "$tail_pid" 2>/dev/null || true
	grep '^# results:' "$outf" | sed 's/^/# '"$name"' /' >>"$RESULT_FILE" || true
	# which namespace/veth this run used (capacity.sh header)
	grep '^# netns: on ' "$outf" | sed 's/^# /# '"$name"' /' >>"$RESULT_FILE" || true
}

# field KEY FILE [PREFIX]: value of KEY=... on the last line starting with PREFIX
field() {
	local key=$1 file=$2 prefix=${3:-RESULT }
	awk -v k="$key" -v p="$prefix" '
		index($0, p) == 1 { line = $0 }
		END { n = split(line, f, " "); for (i = 1; i <= n; i++) if (index(f[i], k "=") == 1) { v = substr(f[i], length(k) + 2) }
		      print v }' "$file"
}
