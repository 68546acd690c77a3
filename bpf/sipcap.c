//go:build ignore

// sipcap: timestamp SIP packets at the TC ingress and egress hooks.
//
// Both programs parse Ethernet (plus one in-band 802.1Q/802.1ad tag),
// IPv4 or IPv6, then UDP or TCP, keep only packets whose source or
// destination port is in sip_port_map, and push one `struct event` per
// packet into the `events` ring buffer, cut after the captured payload. They never modify or
// drop a packet: the verdict is always TCX_NEXT (== TC_ACT_UNSPEC), which
// lets the next TCX program or legacy filter decide, and means "pass" when
// there is none. See doc.go for the hook points and the event layout.

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>

#include "bpf_helpers.h"
#include "bpf_endian.h"

char __license[] SEC("license") = "Dual BSD/GPL";

// Largest payload prefix a record can hold. A power of two so the copy
// length can be bounded with a mask. Ring records are cut after the
// captured bytes, so raising it costs only per-CPU scratch space; Go reads
// it from the generated type (SnapMax in loader.go).
#define SNAP_MAX 2048

// TCX_NEXT is -1 in linux >= 6.6 uapi; Debian 12's linux-libc-dev is 6.1.
// For legacy cls_bpf in direct-action mode the same value, TC_ACT_UNSPEC,
// means "continue with the next filter", so one verdict fits both paths.
#define VERDICT_NEXT TC_ACT_UNSPEC

#define PROTO_TCP 6
#define PROTO_UDP 17

#define DIR_INGRESS 0
#define DIR_EGRESS 1

// event.flags
#define FLAG_IPV4_FRAGMENT (1 << 0) // first fragment (MF set): lengths cover this fragment only
#define FLAG_LEN_FROM_SKB (1 << 1)  // IP length field was 0 or beyond the skb (GSO/BIG TCP): lengths from skb->len

// ---- Configuration, rewritten from Go before load (spec.Variables). ----

// One bit per port: bit (p & 7) of byte p >> 3. 8 KiB of .rodata buys an
// O(1), loop-free membership test for any number of ports.
volatile const __u8 sip_port_map[65536 / 8] = {};

// Ports of the peers the proxy itself connects to (configured next hops):
// their TCP connections run from an ephemeral local port.
volatile const __u8 peer_port_map[65536 / 8] = {};

// proxy_side_only: capture only the proxy's side of the wire. At ingress a
// packet to one of sip_port_map (or from a peer port); at egress a packet
// from one of sip_port_map (or to a peer port). On lo this skips the second
// copy of every packet (the sender's egress or the receiver's ingress),
// halving ring traffic. 0: any packet with a wanted port on either side.
volatile const __u8 proxy_side_only = 0;

// Payload bytes to copy per event, 0 < snaplen <= SNAP_MAX.
volatile const __u32 snaplen = SNAP_MAX;

// wakeup_bytes: 0 wakes the reader for every event; WAKEUP_NEVER never
// does (the reader polls on its own clock). Otherwise events are
// submitted without a wake-up, except the one that carries the backlog
// across a multiple of wakeup_bytes, and the reader polls on a short
// deadline: a wake-up (an IRQ work item plus a reader context switch) per
// packet was most of the egress program's cost.
volatile const __u32 wakeup_bytes = 0;

// WAKEUP_NEVER as wakeup_bytes skips the backlog query altogether: the
// loader freezes .rodata, so the verifier prunes the branch not taken.
#define WAKEUP_NEVER 0xffffffffU

// ---- Maps. ----

struct event {
	__u64 ts_ns;       // bpf_ktime_get_ns() at hook entry (CLOCK_MONOTONIC)
	__u32 ifindex;     // skb->ifindex
	__u32 pkt_len;     // skb->len: the whole frame as the hook sees it, L2 header included
	__u32 payload_len; // L4 payload length, not truncated
	__u32 cap_len;     // valid bytes in data (<= snaplen, <= payload_len)
	__u32 tcp_seq;     // TCP sequence number of the first payload byte (host order); 0 for UDP
	__u16 sport;       // host order
	__u16 dport;       // host order
	__u8 saddr[16];    // IPv6, or IPv4-mapped IPv6 (::ffff:a.b.c.d)
	__u8 daddr[16];
	__u8 direction;  // DIR_INGRESS or DIR_EGRESS
	__u8 ip_version; // 4 or 6
	__u8 l4_proto;   // PROTO_UDP or PROTO_TCP
	__u8 tcp_flags;  // TCP flags byte (FIN 0x01 … CWR 0x80); 0 for UDP
	__u32 flags;     // FLAG_*
	__u8 data[SNAP_MAX]; // payload prefix; bytes past cap_len are stale
};

// EVENT_HDR: bytes of struct event before data[]; a ring record is
// EVENT_HDR + cap_len bytes.
#define EVENT_HDR __builtin_offsetof(struct event, data)
// A ring-buffer record's footprint: an 8-byte header, then the sample
// rounded up to 8 bytes (kernel/bpf/ringbuf.c).
#define RINGBUF_REC_SIZE(sz) ((((__u64)(sz)) + 8 + 7) & ~7ULL)

struct counters {
	__u64 seen;       // every packet the hooks ran on
	__u64 captured;   // events submitted to the ring
	__u64 ring_drops; // events lost because the ring was full
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); // overridden from Config.RingBytes
	__type(value, struct event);  // BTF only, so bpf2go can emit the Go type
} events SEC(".maps");

// One struct event per CPU to build a record in: it is too big for the
// 512-byte BPF stack, and bpf_ringbuf_reserve only takes constant sizes,
// while bpf_ringbuf_output copies a variable-length prefix. A fixed-size
// reservation cost a ring slot of 2 KiB per packet whatever its size: at
// a few hundred bytes per SIP message that tripled the ring's memory
// traffic, which at these rates is cache misses on both the BPF and the
// reader side. The scratch stays hot in this CPU's cache.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

// Per-CPU so the hot path needs no atomics; Go sums the CPUs.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counters);
} stats SEC(".maps");

// ---- Wire headers, read with load_hdr. Byte-wise, no bitfields. ----

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

struct ipv4_hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__be16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct udp_hdr {
	__be16 sport;
	__be16 dport;
	__be16 len;
	__be16 check;
};

struct tcp_hdr {
	__be16 sport;
	__be16 dport;
	__be32 seq;
	__be32 ack;
	__u8 doff_res; // data offset in the high nibble, in 32-bit words
	__u8 flags;
	__be16 window;
	__be16 check;
	__be16 urg_ptr;
};

// HDR_OFF_MAX bounds a header's offset for the direct read in load_hdr:
// Ethernet, one VLAN tag and the largest IPv4 header end at 78.
#define HDR_OFF_MAX 128

// load_hdr copies len header bytes at off into to. It reads the packet's
// linear data directly when they are there, which at TC is nearly always
// (lo, veth and NIC drivers put the headers in the head), and falls back to
// bpf_skb_load_bytes, which also walks fragments. A helper call per header
// was a third of the cost of a packet that is not captured, and on lo half
// of the runs are that (the peer's side of each packet).
static __always_inline int load_hdr(struct __sk_buff *skb, __u32 off, void *to, const __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (off <= HDR_OFF_MAX) {
		void *p = data + off;
		if (p + len <= data_end) {
			__builtin_memcpy(to, p, len);
			return 0;
		}
	}
	return bpf_skb_load_bytes(skb, off, to, len);
}

static __always_inline int port_wanted(__u16 port)
{
	return sip_port_map[port >> 3] & (1 << (port & 7));
}

static __always_inline int peer_port(__u16 port)
{
	return peer_port_map[port >> 3] & (1 << (port & 7));
}

static __always_inline int wanted(__u8 direction, __u16 sport, __u16 dport)
{
	if (!proxy_side_only)
		return port_wanted(sport) || port_wanted(dport) || peer_port(sport) || peer_port(dport);
	if (direction == DIR_INGRESS)
		return port_wanted(dport) || peer_port(sport);
	return port_wanted(sport) || peer_port(dport);
}

static __always_inline struct counters *counters_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&stats, &zero);
}

static __always_inline int capture(struct __sk_buff *skb, __u8 direction)
{
	struct counters *cnt = counters_get();
	if (cnt)
		cnt->seen++;

	// L2. At TC, packet data starts at the Ethernet header on Ethernet-like
	// devices, lo included (zero MACs). Accelerated VLAN tags are not in
	// the data; one in-band tag is skipped.
	__u32 off = ETH_HLEN;
	__be16 h_proto;
	if (load_hdr(skb, 12, &h_proto, sizeof(h_proto)) < 0)
		return VERDICT_NEXT;
	if (h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag vlan;
		if (load_hdr(skb, off, &vlan, sizeof(vlan)) < 0)
			return VERDICT_NEXT;
		h_proto = vlan.proto;
		off += sizeof(vlan);
	}

	// L3. l3_end is where the IP packet ends according to its own length
	// field, which excludes Ethernet padding of short frames at ingress.
	__u8 ip_version, l4_proto;
	__u32 l3_end, flags = 0;
	__u32 l4_off;
	struct ipv4_hdr ip4;
	struct ipv6_hdr ip6;
	if (h_proto == bpf_htons(ETH_P_IP)) {
		if (load_hdr(skb, off, &ip4, sizeof(ip4)) < 0)
			return VERDICT_NEXT;
		__u32 ihl = (ip4.ver_ihl & 0x0f) * 4;
		if ((ip4.ver_ihl >> 4) != 4 || ihl < sizeof(ip4))
			return VERDICT_NEXT;
		__u16 frag = bpf_ntohs(ip4.frag_off);
		if (frag & 0x1fff) // non-first fragment: no L4 header to filter on
			return VERDICT_NEXT;
		if (frag & 0x2000)
			flags |= FLAG_IPV4_FRAGMENT;
		ip_version = 4;
		l4_proto = ip4.protocol;
		l4_off = off + ihl;
		l3_end = off + bpf_ntohs(ip4.tot_len);
		if (bpf_ntohs(ip4.tot_len) < ihl || l3_end > skb->len) {
			l3_end = skb->len;
			flags |= FLAG_LEN_FROM_SKB;
		}
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		if (load_hdr(skb, off, &ip6, sizeof(ip6)) < 0)
			return VERDICT_NEXT;
		// Extension headers are not walked: SIP over UDP/TCP carries none
		// in practice, and a walk costs a bounded loop per packet. A packet
		// with any (fragment header included) is not captured.
		ip_version = 6;
		l4_proto = ip6.nexthdr;
		l4_off = off + sizeof(ip6);
		__u32 plen = bpf_ntohs(ip6.payload_len);
		l3_end = l4_off + plen;
		if (plen == 0 || l3_end > skb->len) { // 0: jumbogram / BIG TCP
			l3_end = skb->len;
			flags |= FLAG_LEN_FROM_SKB;
		}
	} else {
		return VERDICT_NEXT;
	}

	// L4.
	__u16 sport, dport;
	__u32 payload_off, seq = 0;
	__u8 tcp_flags = 0;
	if (l4_proto == PROTO_UDP) {
		struct udp_hdr udp;
		if (load_hdr(skb, l4_off, &udp, sizeof(udp)) < 0)
			return VERDICT_NEXT;
		sport = bpf_ntohs(udp.sport);
		dport = bpf_ntohs(udp.dport);
		payload_off = l4_off + sizeof(udp);
	} else if (l4_proto == PROTO_TCP) {
		struct tcp_hdr tcp;
		if (load_hdr(skb, l4_off, &tcp, sizeof(tcp)) < 0)
			return VERDICT_NEXT;
		__u32 doff = (tcp.doff_res >> 4) * 4;
		if (doff < sizeof(tcp))
			return VERDICT_NEXT;
		sport = bpf_ntohs(tcp.sport);
		dport = bpf_ntohs(tcp.dport);
		seq = bpf_ntohl(tcp.seq);
		tcp_flags = tcp.flags;
		payload_off = l4_off + doff;
	} else {
		return VERDICT_NEXT;
	}

	if (!wanted(direction, sport, dport))
		return VERDICT_NEXT;
	if (payload_off > l3_end)
		return VERDICT_NEXT;
	__u32 payload_len = l3_end - payload_off;
	// Bare ACKs, SYNs and FINs carry no SIP bytes.
	if (l4_proto == PROTO_TCP && payload_len == 0)
		return VERDICT_NEXT;

	// The timestamp is taken once the packet is known to be wanted, a few
	// header loads (~0.1 µs) after hook entry: every other packet on the
	// interface (RTP, say) then pays no clock read.
	__u64 ts = bpf_ktime_get_ns();
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return VERDICT_NEXT;

	e->ts_ns = ts;
	e->ifindex = skb->ifindex;
	e->pkt_len = skb->len;
	e->payload_len = payload_len;
	e->tcp_seq = seq;
	e->sport = sport;
	e->dport = dport;
	e->direction = direction;
	e->ip_version = ip_version;
	e->l4_proto = l4_proto;
	e->tcp_flags = tcp_flags;
	e->flags = flags;
	if (ip_version == 4) {
		__builtin_memset(e->saddr, 0, 10);
		__builtin_memset(e->daddr, 0, 10);
		e->saddr[10] = 0xff;
		e->saddr[11] = 0xff;
		e->daddr[10] = 0xff;
		e->daddr[11] = 0xff;
		__builtin_memcpy(&e->saddr[12], &ip4.saddr, 4);
		__builtin_memcpy(&e->daddr[12], &ip4.daddr, 4);
	} else {
		__builtin_memcpy(e->saddr, ip6.saddr, 16);
		__builtin_memcpy(e->daddr, ip6.daddr, 16);
	}

	// Copy min(payload_len, snaplen) bytes. bpf_skb_load_bytes needs a
	// length the verifier can prove is in [1, SNAP_MAX]: clamp, hide the
	// value from clang with barrier_var (so it cannot fold the clamp into
	// something the verifier cannot follow), then mask. For n in
	// [1, SNAP_MAX] the mask expression is the identity.
	__u64 n = payload_len;
	if (n > snaplen)
		n = snaplen;
	if (n > SNAP_MAX)
		n = SNAP_MAX;
	e->cap_len = 0;
	if (n > 0) {
		barrier_var(n);
		n = ((n - 1) & (SNAP_MAX - 1)) + 1;
		if (bpf_skb_load_bytes(skb, payload_off, e->data, n) == 0)
			e->cap_len = n;
		else
			n = 0;
	}

	__u64 wake = 0;
	if (wakeup_bytes == WAKEUP_NEVER) {
		wake = BPF_RB_NO_WAKEUP;
	} else if (wakeup_bytes) {
		// Wake only when this record carries the backlog across a multiple
		// of wakeup_bytes, not on every record above it: each forced
		// wake-up is an IRQ work item, a self-IPI (an APIC MSR write,
		// which traps in a VM) and a reader wake-up, and a reader that
		// is merely late would otherwise get one per packet until it
		// drains. A crossing lost to a concurrent producer on another CPU
		// costs at most one poll period: the reader's deadline poll still
		// collects everything.
		__u64 queued = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		__u64 after = queued + RINGBUF_REC_SIZE(EVENT_HDR + n);
		wake = queued / wakeup_bytes != after / wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	}
	// n is in [0, SNAP_MAX] on every path, so the size is within the
	// scratch value; the verifier checks exactly that.
	if (bpf_ringbuf_output(&events, e, EVENT_HDR + n, wake) < 0) {
		if (cnt)
			cnt->ring_drops++;
		return VERDICT_NEXT;
	}
	if (cnt)
		cnt->captured++;
	return VERDICT_NEXT;
}

SEC("tc")
int sipcap_ingress(struct __sk_buff *skb)
{
	return capture(skb, DIR_INGRESS);
}

SEC("tc")
int sipcap_egress(struct __sk_buff *skb)
{
	return capture(skb, DIR_EGRESS);
}
