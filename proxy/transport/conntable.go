package transport

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// connTable indexes open TCP connections by id (to answer on the
// connection a request came in on) and by remote address (to reuse any
// connection to a peer). Lookups on the send path take only the read lock.
type connTable struct {
	nextID  atomic.Uint64
	mu      sync.RWMutex
	closed  bool
	ids     map[uint64]*tcpConn
	remotes map[netip.AddrPort][]*tcpConn
}

func (ct *connTable) init() {
	ct.ids = make(map[uint64]*tcpConn)
	ct.remotes = make(map[netip.AddrPort][]*tcpConn)
}

// insert registers c; the caller holds the write lock.
func (ct *connTable) insert(c *tcpConn) {
	ct.ids[c.id] = c
	ct.remotes[c.remote] = append(ct.remotes[c.remote], c)
}

// add registers c and reserves n goroutines on wg. Doing both under the
// lock that shutdown takes guarantees no goroutine starts after Close began
// waiting. It returns false once the table is closed.
func (ct *connTable) add(c *tcpConn, wg *sync.WaitGroup, n int) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.closed {
		return false
	}
	wg.Add(n)
	ct.insert(c)
	return true
}

func (ct *connTable) byID(id uint64) *tcpConn {
	ct.mu.RLock()
	defer ct.mu.RUnlock()
	return ct.ids[id]
}

// pick returns the most recently registered open connection to remote;
// the caller holds a lock.
func (ct *connTable) pick(remote netip.AddrPort) *tcpConn {
	cs := ct.remotes[remote]
	for i := len(cs) - 1; i >= 0; i-- {
		if !cs[i].closed.Load() {
			return cs[i]
		}
	}
	return nil
}

// getOrDial returns an open connection to remote, or registers a new
// outbound one made by mk and starts its writer (which dials). Check and
// insert happen under one lock so concurrent senders share one dial.
func (ct *connTable) getOrDial(remote netip.AddrPort, mk func() *tcpConn, wg *sync.WaitGroup) (*tcpConn, error) {
	ct.mu.RLock()
	c := ct.pick(remote)
	ct.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if c := ct.pick(remote); c != nil {
		return c, nil
	}
	if ct.closed {
		return nil, ErrClosed
	}
	c = mk()
	ct.insert(c)
	wg.Add(1)
	go c.writeLoop()
	return c, nil
}

func (ct *connTable) remove(c *tcpConn) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	delete(ct.ids, c.id)
	cs := ct.remotes[c.remote]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(ct.remotes, c.remote)
	} else {
		ct.remotes[c.remote] = cs
	}
}

// closeAll refuses new connections and closes every open one.
func (ct *connTable) closeAll(cause error) {
	ct.mu.Lock()
	ct.closed = true
	all := make([]*tcpConn, 0, len(ct.ids))
	for _, c := range ct.ids {
		all = append(all, c)
	}
	ct.mu.Unlock()
	for _, c := range all {
		c.close(cause)
	}
}
