package kernel

import (
	"net/netip"
	"testing"

	"sipvigil/proxy/observe"
)

// TestTableGrowKeepsFIFO fills a table far past its initial bucket array
// with duplicate keys and checks that every key still finds its oldest
// entry first after the rehashes, and that removal and expiry keep
// working across them.
func TestTableGrowKeepsFIFO(t *testing.T) {
	const keys, copies = 700, 3 // 2,100 entries: three doublings from 256
	tb := newTable[int](4096)
	mk := func(n int) key {
		k := key{h: uint64(n) * 0x9E3779B97F4A7C15, lport: 5060, proto: observe.ProtoUDP, dir: observe.In}
		k.setRemote(netip.MustParseAddrPort("192.0.2.1:5060"))
		return k
	}
	for c := range copies {
		for n := range keys {
			k := mk(n)
			i := tb.insert(&k, k.sum(), int64(c*keys+n))
			tb.slots[i].v = c
		}
	}
	if got, want := len(tb.buckets), 4096; got != want {
		t.Fatalf("buckets = %d after %d inserts, want %d", got, keys*copies, want)
	}
	for c := range copies {
		for n := range keys {
			k := mk(n)
			i := tb.find(&k, k.sum())
			if i == nilIdx {
				t.Fatalf("key %d copy %d: not found", n, c)
			}
			if v := tb.slots[i].v; v != c {
				t.Fatalf("key %d: found copy %d, want the oldest remaining, %d", n, v, c)
			}
			tb.remove(i)
		}
	}
	if tb.n != 0 || tb.head != nilIdx || tb.tail != nilIdx {
		t.Fatalf("after removing everything: n=%d head=%d tail=%d", tb.n, tb.head, tb.tail)
	}
}

// TestTableGrowStopsAtMax checks the bucket array stays at the first power
// of two >= max.
func TestTableGrowStopsAtMax(t *testing.T) {
	tb := newTable[int](300)
	for n := range 300 {
		k := key{h: uint64(n)}
		tb.insert(&k, k.sum(), int64(n))
	}
	if got := len(tb.buckets); got != 512 {
		t.Fatalf("buckets = %d, want 512", got)
	}
	if got := tb.expire(150); got != 150 {
		t.Fatalf("expired %d, want 150", got)
	}
	for n := 150; n < 300; n++ {
		k := key{h: uint64(n)}
		if tb.find(&k, k.sum()) == nilIdx {
			t.Fatalf("key %d lost after expiry", n)
		}
	}
}
