package kernel

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"sipvigil/proxy/observe"
)

// pending is what a proxy packet waiting for its kernel event keeps. A
// match needs only the Stamp; the full PacketInfo (the addresses, and the
// text with Config.Text) is copied only when there is an out to give a
// Match to, so the production slot is small and holds one pointer.
type pending struct {
	stamp *observe.Stamp
	info  *PacketInfo // nil unless the Matcher has an out
}

// kernVal is what a kernel entry waiting for its proxy packet keeps.
type kernVal struct {
	ifindex  uint32
	offset   int32
	segments int32
}

// contVal tracks a TCP message that runs past the end of an event; it is
// keyed by the flow and the sequence number expected next.
type contVal struct {
	end       uint32 // sequence number just after the message's last byte
	msg       uint64 // the message's payload hash (egress: entry made on completion)
	ifindex   uint32
	offset    int32 // start offset in its first event
	segments  int32 // events seen so far
	startMono int64
}

// localCacheSize is the number of learned TCP endpoints (a direct-mapped
// cache: a collision forgets the older endpoint, which costs at most the
// classification of that connection's later events as Foreign).
const localCacheSize = 4096

// maxMsgsPerEvent bounds the messages cut from one TCP event; the rest of
// the event is left unscanned (counted as ShortCapture).
const maxMsgsPerEvent = 16

// Matcher joins proxy packets with kernel events; see the package doc for
// the rules. Safe for concurrent AddKernel, AddPacket, Expire and Stats.
// *Matcher implements observe.Observer.
type Matcher struct {
	ttl     int64
	hashLen int
	seed    maphash.Seed
	clock   *Clock
	out     func(Match)        // nil: a match only stamps, no Match is built
	ports   [65536 / 64]uint64 // LocalPorts bitmap, read-only after New

	// locals holds a hash of each learned local TCP endpoint (0 = empty);
	// atomics because the classification of every kernel event reads it
	// before taking the mutex.
	locals [localCacheSize]atomic.Uint64

	// Lock-free counters for the paths that never take the mutex.
	kernelEvents, packets, otherSide, foreign, ignored, shortCapture atomic.Uint64

	mu         sync.Mutex
	kern       *table[kernVal]
	pkt        *table[pending]
	cont       *table[contVal]
	text       bool  // Config.Text
	now        int64 // newest mono seen
	nextExpire int64
	st         MatcherStats // counters guarded by mu
}

var _ observe.Observer = (*Matcher)(nil)

// NewMatcher returns a Matcher that calls out, outside its lock, for every
// match. out must be safe for concurrent use and must not call back into
// the Matcher's Add methods. A nil out builds no Match at all: a match
// then only sets the packet's observe.Stamp, which is all the proxy's
// traces need. A nil clock gets NewClock().
func NewMatcher(cfg Config, clock *Clock, out func(Match)) *Matcher {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.HashLen <= 0 {
		cfg.HashLen = DefaultHashLen
	}
	if clock == nil {
		clock = NewClock()
	}
	m := &Matcher{
		ttl:     int64(cfg.TTL),
		text:    cfg.Text,
		hashLen: cfg.HashLen,
		seed:    maphash.MakeSeed(),
		clock:   clock,
		out:     out,
		kern:    newTable[kernVal](cfg.MaxPending),
		pkt:     newTable[pending](cfg.MaxPending),
		cont:    newTable[contVal](cfg.MaxPending),
	}
	for _, p := range cfg.LocalPorts {
		m.ports[p/64] |= 1 << (p % 64)
	}
	return m
}

// Packet implements observe.Observer.
func (m *Matcher) Packet(p observe.Packet) { m.AddPacket(&p) }

// AddPacket records a message the proxy read or wrote. p.Data is hashed
// and scanned for the summary, not kept.
func (m *Matcher) AddPacket(p *observe.Packet) {
	m.packets.Add(1)
	if (p.Proto != observe.ProtoUDP && p.Proto != observe.ProtoTCP) ||
		(p.Dir != observe.In && p.Dir != observe.Out) {
		m.ignored.Add(1)
		return
	}
	lport := p.Local.Port()
	if p.Proto == observe.ProtoTCP && !m.isLocalPort(lport) {
		m.learn(p.Local) // an outbound connection's ephemeral port
	}
	k := key{h: m.hash(p.Data), lport: lport, proto: p.Proto, dir: p.Dir}
	k.setRemote(p.Remote)
	sum := k.sum()

	// Everything that touches Data happens before the lock.
	pend := pending{stamp: p.Stamp}
	if m.out != nil {
		info := &PacketInfo{
			Dir: p.Dir, Proto: p.Proto, Local: p.Local, Remote: p.Remote,
			ConnID: p.ConnID, ID: p.ID, Stamp: p.Stamp, Mono: p.Mono, Len: len(p.Data),
		}
		if m.text {
			info.fillText(p.Data)
		}
		pend.info = info
	}

	var mt Match
	m.mu.Lock()
	m.tick(p.Mono)
	i := m.kern.find(&k, sum)
	if i != nilIdx {
		s := &m.kern.slots[i]
		m.join(&mt, &pend, s.mono, &s.v)
		m.kern.remove(i)
		m.st.Matched++
	} else {
		if m.pkt.full() {
			m.pkt.remove(m.pkt.head)
			m.st.EvictedPacket++
		}
		j := m.pkt.insert(&k, sum, p.Mono)
		m.pkt.slots[j].v = pend
	}
	m.mu.Unlock()
	if i != nilIdx && m.out != nil {
		m.out(mt)
	}
}

// AddKernel records one TC event. ev.Payload is not kept.
func (m *Matcher) AddKernel(ev *KernelEvent) {
	m.kernelEvents.Add(1)
	var dir observe.Direction
	var remote netip.AddrPort
	src, dst := ev.Src, ev.Dst
	switch ev.Hook {
	case Ingress:
		switch {
		case m.isLocal(ev.Proto, dst):
			dir, remote = observe.In, src
		case m.isLocal(ev.Proto, src):
			m.otherSide.Add(1) // our egress, looped back on lo
			return
		}
	case Egress:
		switch {
		case m.isLocal(ev.Proto, src):
			dir, remote = observe.Out, dst
		case m.isLocal(ev.Proto, dst):
			m.otherSide.Add(1) // a peer's egress towards us on lo
			return
		}
	default:
		m.ignored.Add(1)
		return
	}
	if dir == 0 {
		m.foreign.Add(1)
		return
	}
	lport := dst.Port()
	if dir == observe.Out {
		lport = src.Port()
	}
	if ev.PayloadLen <= 0 {
		m.ignored.Add(1)
		return
	}
	switch ev.Proto {
	case observe.ProtoUDP:
		m.addUDP(ev, dir, remote, lport)
	case observe.ProtoTCP:
		m.addTCP(ev, dir, remote, lport)
	default:
		m.ignored.Add(1)
	}
}

func (m *Matcher) addUDP(ev *KernelEvent, dir observe.Direction, remote netip.AddrPort, lport uint16) {
	n := min(m.hashLen, ev.PayloadLen)
	if len(ev.Payload) < n {
		m.shortCapture.Add(1)
		return
	}
	k := key{h: maphash.Bytes(m.seed, ev.Payload[:n]), lport: lport, proto: observe.ProtoUDP, dir: dir}
	k.setRemote(remote)
	var mt Match
	m.mu.Lock()
	m.tick(ev.Mono)
	ok := m.kernelSide(&mt, &k, ev.Mono, kernVal{ifindex: ev.Ifindex, segments: 1})
	m.mu.Unlock()
	if ok && m.out != nil {
		m.out(mt)
	}
}

var tcpOutPool = sync.Pool{New: func() any { return new([maxMsgsPerEvent + 1]Match) }}

// segMsg is one message cut from a TCP event.
type segMsg struct {
	h      uint64
	offset int32
}

func (m *Matcher) addTCP(ev *KernelEvent, dir observe.Direction, remote netip.AddrPort, lport uint16) {
	plen := ev.PayloadLen
	capt := ev.Payload
	if len(capt) > plen {
		capt = capt[:plen]
	}
	seq := ev.TCPSeq
	flow := key{lport: lport, proto: observe.ProtoTCP, dir: dir}
	flow.setRemote(remote)

	// Phase 1 (locked): does this event continue a tracked message?
	ck := flow
	ck.h = uint64(seq)
	var cv contVal
	m.mu.Lock()
	m.tick(ev.Mono)
	ci := m.cont.find(&ck, ck.sum())
	if ci != nilIdx {
		cv = m.cont.slots[ci].v
		m.cont.remove(ci)
	}
	m.mu.Unlock()

	// Phase 2 (unlocked): cut the captured bytes into messages.
	var (
		msgs     [maxMsgsPerEvent]segMsg
		nmsgs    int
		done     bool    // an egress message tracked by cv ends here
		next     contVal // a message that runs past this event
		haveNext bool
		short    bool
		off      int
	)
	if ci != nilIdx {
		cv.segments++
		rem := cv.end - seq // bytes of the tracked message in this event
		if rem > uint32(plen) {
			off = plen // still inside: track on
			next, haveNext = cv, true
		} else {
			off = int(rem)
			done = dir == observe.Out
		}
	} else {
		o := skipCRLF(capt, 0)
		if o == plen {
			m.ignored.Add(1) // a keepalive
			return
		}
		if !startsMessage(capt[o:]) {
			m.mu.Lock()
			m.st.TCPUnaligned++
			m.mu.Unlock()
			return
		}
	}
	for off < plen && !haveNext {
		off = skipCRLF(capt, off)
		if off >= plen {
			break
		}
		if off >= len(capt) || nmsgs == maxMsgsPerEvent {
			short = true // a message starts beyond the capture
			break
		}
		flen := frameLen(capt[off:])
		if flen == frameNoCL {
			break // the proxy's framer rejects it too: nothing to match
		}
		n := m.hashLen
		if flen >= 0 {
			n = min(n, flen)
		}
		if off+n > len(capt) {
			short = true
			break
		}
		h := maphash.Bytes(m.seed, capt[off:off+n])
		if flen == frameUnknown || off+flen > plen {
			// Runs past this event (or we cannot tell): ingress time is
			// this event's, egress time that of the event with the end.
			if dir == observe.In {
				msgs[nmsgs] = segMsg{h: h, offset: int32(off)}
				nmsgs++
			}
			if flen == frameUnknown {
				if dir == observe.Out { // best effort: first event's time
					msgs[nmsgs] = segMsg{h: h, offset: int32(off)}
					nmsgs++
				}
				break
			}
			next = contVal{end: seq + uint32(off+flen), msg: h, ifindex: ev.Ifindex,
				offset: int32(off), segments: 1, startMono: ev.Mono}
			haveNext = true
			break
		}
		msgs[nmsgs] = segMsg{h: h, offset: int32(off)}
		nmsgs++
		off += flen
	}

	// Phase 3 (locked): publish. The matches wait in a pooled array (7 KB,
	// too big to zero on the stack per event) until the lock is released.
	out := tcpOutPool.Get().(*[maxMsgsPerEvent + 1]Match)
	defer tcpOutPool.Put(out)
	nout := 0
	m.mu.Lock()
	if done {
		k := flow
		k.h = cv.msg
		if m.kernelSide(&out[nout], &k, ev.Mono, kernVal{ifindex: ev.Ifindex, offset: cv.offset, segments: cv.segments}) {
			nout++
		}
	}
	for _, sm := range msgs[:nmsgs] {
		k := flow
		k.h = sm.h
		if m.kernelSide(&out[nout], &k, ev.Mono, kernVal{ifindex: ev.Ifindex, offset: sm.offset, segments: 1}) {
			nout++
		}
	}
	if haveNext {
		nk := flow
		nk.h = uint64(seq + uint32(plen))
		if m.cont.full() {
			m.cont.remove(m.cont.head)
			m.st.TCPIncomplete++
		}
		i := m.cont.insert(&nk, nk.sum(), ev.Mono)
		m.cont.slots[i].v = next
	}
	m.mu.Unlock()
	if short {
		m.shortCapture.Add(1)
	}
	if m.out != nil {
		for i := range nout {
			m.out(out[i])
		}
	}
}

// kernelSide matches a kernel message against a waiting packet (filling mt
// and returning true) or leaves it waiting. m.mu must be held.
func (m *Matcher) kernelSide(mt *Match, k *key, mono int64, kv kernVal) bool {
	sum := k.sum()
	if i := m.pkt.find(k, sum); i != nilIdx {
		m.join(mt, &m.pkt.slots[i].v, mono, &kv)
		m.pkt.remove(i)
		m.st.Matched++
		return true
	}
	if m.kern.full() {
		m.kern.remove(m.kern.head)
		m.st.EvictedKernel++
	}
	i := m.kern.insert(k, sum, mono)
	m.kern.slots[i].v = kv
	return false
}

// join gives the proxy's record of the message its kernel time and, when
// there is an out to call, builds the Match in mt.
func (m *Matcher) join(mt *Match, p *pending, kmono int64, kv *kernVal) {
	if p.stamp != nil {
		p.stamp.Set(kmono, kv.ifindex)
	}
	if p.info == nil {
		return
	}
	mt.Packet = *p.info
	mt.KernelMono = kmono
	mt.Ifindex = kv.ifindex
	mt.Wall = m.clock.Wall(kmono)
	mt.Offset = int(kv.offset)
	mt.Segments = int(kv.segments)
}

// tick advances the matcher's notion of now and expires amortised, at
// most every TTL/8. m.mu must be held.
func (m *Matcher) tick(mono int64) {
	if mono > m.now {
		m.now = mono
	}
	if m.now >= m.nextExpire {
		m.expire(m.now)
		m.nextExpire = m.now + m.ttl/8
	}
}

// Expire drops entries older than TTL at now (CLOCK_MONOTONIC ns) and
// counts them. Add* already expire inline when events keep coming; call
// Expire periodically so entries also expire when traffic stops.
func (m *Matcher) Expire(now int64) {
	m.mu.Lock()
	if now > m.now {
		m.now = now
	}
	m.expire(now)
	m.mu.Unlock()
}

func (m *Matcher) expire(now int64) {
	cutoff := now - m.ttl
	m.st.UnmatchedKernel += m.kern.expire(cutoff)
	m.st.UnmatchedPacket += m.pkt.expire(cutoff)
	m.st.TCPIncomplete += m.cont.expire(cutoff)
}

// Stats returns the counters and table sizes.
func (m *Matcher) Stats() MatcherStats {
	m.mu.Lock()
	s := m.st
	s.Pending = PendingStats{Kernel: m.kern.n, Packet: m.pkt.n, TCPContinuations: m.cont.n}
	m.mu.Unlock()
	s.Evicted = s.EvictedKernel + s.EvictedPacket
	s.KernelEvents = m.kernelEvents.Load()
	s.Packets = m.packets.Load()
	s.OtherSide = m.otherSide.Load()
	s.Foreign = m.foreign.Load()
	s.Ignored = m.ignored.Load()
	s.ShortCapture = m.shortCapture.Load()
	return s
}

// TTL returns the effective TTL.
func (m *Matcher) TTL() time.Duration { return time.Duration(m.ttl) }

func (m *Matcher) hash(data []byte) uint64 {
	return maphash.Bytes(m.seed, data[:min(m.hashLen, len(data))])
}

func (m *Matcher) isLocalPort(p uint16) bool { return m.ports[p/64]&(1<<(p%64)) != 0 }

func (m *Matcher) isLocal(proto uint8, ap netip.AddrPort) bool {
	if m.isLocalPort(ap.Port()) {
		return true
	}
	if proto != observe.ProtoTCP {
		return false
	}
	h := apHash(ap)
	return m.locals[h%localCacheSize].Load() == h
}

func (m *Matcher) learn(ap netip.AddrPort) {
	h := apHash(ap)
	if s := &m.locals[h%localCacheSize]; s.Load() != h {
		s.Store(h)
	}
}

// apHash is never 0, which marks an empty cache slot. Through setRemote
// an IPv4 endpoint and its IPv4-mapped form hash alike.
func apHash(ap netip.AddrPort) uint64 {
	var k key
	k.setRemote(ap)
	return k.sum() | 1
}
