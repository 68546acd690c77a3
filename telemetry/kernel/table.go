package kernel

import (
	"encoding/binary"
	"math/bits"
	"net/netip"

	"sipvigil/proxy/observe"
)

// key identifies a message (or, in the continuation table, a TCP flow
// position) on the proxy's side of the wire. It holds no pointers (the
// remote address as 16 bytes, not a netip.Addr, whose zone is a pointer),
// so the kernel and continuation tables' slots hold none at all (the GC
// does not scan them, and copies need no write barriers), and a waiting
// packet's slot holds one, its Stamp.
type key struct {
	h     uint64   // payload hash; next sequence number for continuations
	raddr [16]byte // remote address; IPv4 as IPv4-mapped IPv6
	rport uint16
	lport uint16
	proto uint8
	dir   observe.Direction
}

// setRemote sets the remote address and port. As16 maps IPv4 into IPv6,
// so a dual-stack socket's ::ffff:a.b.c.d and the kernel's a.b.c.d agree;
// the zone is not part of the key.
func (k *key) setRemote(ap netip.AddrPort) {
	k.raddr = ap.Addr().As16()
	k.rport = ap.Port()
}

// sum mixes every field into the bucket hash. The payload hash alone would
// do for messages, but continuation keys are small sequence numbers.
func (k *key) sum() uint64 {
	x := k.h ^ binary.LittleEndian.Uint64(k.raddr[:8])*0x9E3779B97F4A7C15
	x = bits.RotateLeft64(x, 29) ^ binary.LittleEndian.Uint64(k.raddr[8:])*0xC2B2AE3D27D4EB4F
	x ^= uint64(k.rport)<<40 | uint64(k.lport)<<24 | uint64(k.proto)<<16 | uint64(k.dir)<<8
	return fmix64(x)
}

// fmix64 is MurmurHash3's finaliser: every input bit affects every output bit.
func fmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

const nilIdx int32 = -1

type slot[V any] struct {
	k            key
	mono         int64
	sum          uint32 // low bits of the key's hash: the bucket under any mask
	bnext, bprev int32  // bucket chain
	anext, aprev int32  // age list (insertion order); anext links the free list
	v            V
}

// table is a bounded multimap from key to values in insertion order, with
// chained buckets and an age list, all as int32 indices into one slice so
// that recycled slots cost no allocation and the GC sees one object. Not
// safe for concurrent use: the Matcher's mutex guards it.
//
// The bucket array grows with the number of entries instead of being sized
// for max up front: a matched entry lives for about a millisecond, so a
// busy proxy holds a few hundred, and a 64 Ki-bucket array (256 KiB) made
// every lookup a cache miss on a cold bucket.
type table[V any] struct {
	slots      []slot[V]
	free       int32
	buckets    []int32
	mask       uint32
	head, tail int32 // oldest, newest
	n, max     int
}

// initialBuckets is the bucket array's starting size (a power of two).
const initialBuckets = 256

func newTable[V any](max int) *table[V] {
	t := &table[V]{
		slots: make([]slot[V], 0, min(max, 1024)),
		free:  nilIdx,
		head:  nilIdx,
		tail:  nilIdx,
		max:   max,
	}
	t.rehash(initialBuckets)
	return t
}

// rehash rebuilds the chains over nb buckets. The age list is walked from
// the oldest, each entry pushed on its chain's head, so every chain keeps
// the newest-first order that find relies on.
func (t *table[V]) rehash(nb int) {
	if cap(t.buckets) >= nb {
		t.buckets = t.buckets[:nb]
	} else {
		t.buckets = make([]int32, nb)
	}
	for i := range t.buckets {
		t.buckets[i] = nilIdx
	}
	t.mask = uint32(nb - 1)
	for i := t.head; i != nilIdx; i = t.slots[i].anext {
		t.pushChain(i)
	}
}

// pushChain links slot i (its sum set) at the head of its bucket's chain.
func (t *table[V]) pushChain(i int32) {
	s := &t.slots[i]
	b := s.sum & t.mask
	s.bprev = nilIdx
	s.bnext = t.buckets[b]
	if s.bnext != nilIdx {
		t.slots[s.bnext].bprev = i
	}
	t.buckets[b] = i
}

// find returns the oldest slot holding k, or nilIdx. Inserts go to the
// chain's head, so the oldest is the last match: identical retransmissions
// then pair FIFO.
func (t *table[V]) find(k *key, sum uint64) int32 {
	found := nilIdx
	for i := t.buckets[uint32(sum)&t.mask]; i != nilIdx; i = t.slots[i].bnext {
		if s := &t.slots[i]; s.sum == uint32(sum) && s.k == *k {
			found = i
		}
	}
	return found
}

func (t *table[V]) full() bool { return t.n >= t.max }

// insert adds k as the newest entry and returns its slot; the caller fills
// slots[i].v and must have made room (full() false).
func (t *table[V]) insert(k *key, sum uint64, mono int64) int32 {
	var i int32
	if t.free != nilIdx {
		i = t.free
		t.free = t.slots[i].anext
	} else {
		t.slots = append(t.slots, slot[V]{})
		i = int32(len(t.slots) - 1)
	}
	s := &t.slots[i]
	s.k = *k
	s.mono = mono
	s.sum = uint32(sum)
	t.pushChain(i)
	s.aprev = t.tail
	s.anext = nilIdx
	if t.tail != nilIdx {
		t.slots[t.tail].anext = i
	} else {
		t.head = i
	}
	t.tail = i
	t.n++
	// Load factor <= 1 keeps chains about one long; the array stops
	// growing at the first power of two >= max.
	if nb := len(t.buckets); t.n > nb && nb < t.max {
		t.rehash(2 * nb)
	}
	return i
}

// remove unlinks slot i and recycles it.
func (t *table[V]) remove(i int32) {
	s := &t.slots[i]
	if s.bprev != nilIdx {
		t.slots[s.bprev].bnext = s.bnext
	} else {
		t.buckets[s.sum&t.mask] = s.bnext
	}
	if s.bnext != nilIdx {
		t.slots[s.bnext].bprev = s.bprev
	}
	if s.aprev != nilIdx {
		t.slots[s.aprev].anext = s.anext
	} else {
		t.head = s.anext
	}
	if s.anext != nilIdx {
		t.slots[s.anext].aprev = s.aprev
	} else {
		t.tail = s.aprev
	}
	s.anext = t.free
	t.free = i
	t.n--
}

// expire removes entries from the oldest while they are older than cutoff
// and returns how many. The age list is insertion order, which is mono
// order up to the small reordering between producers; an entry behind a
// slightly younger one waits for it, never longer than that skew.
func (t *table[V]) expire(cutoff int64) uint64 {
	var n uint64
	for t.head != nilIdx && t.slots[t.head].mono < cutoff {
		t.remove(t.head)
		n++
	}
	return n
}
