package transport

import (
	"bytes"
	"net"
	"sync"
	"testing"

	"sipvigil/proxy/observe"
)

// packetLog is an Observer that copies what it is shown.
type packetLog struct {
	mu sync.Mutex
	ps []observe.Packet
}

func (l *packetLog) Packet(p observe.Packet) {
	c := p
	c.Data = bytes.Clone(p.Data)
	l.mu.Lock()
	l.ps = append(l.ps, c)
	l.mu.Unlock()
}

func (l *packetLog) all() []observe.Packet {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]observe.Packet(nil), l.ps...)
}

// TestObserverSeesEveryMessageWithItsBytes: the observer gets each message
// read and written, whole, with monotonic times in order, for UDP and TCP.
func TestObserverSeesEveryMessageWithItsBytes(t *testing.T) {
	for _, p := range []Proto{UDP, TCP} {
		t.Run(p.String(), func(t *testing.T) {
			obs := &packetLog{}
			rec := newRecorder()
			cfg := Config{Listen: []Listen{{Addr: loop4, UDP: p == UDP, TCP: p == TCP}}, Observer: obs}
			tr := start(t, cfg, rec)
			local := addr(t, tr, p)
			var cl net.Conn
			if p == UDP {
				cl = dialUDP(t, local)
			} else {
				cl = dialTCP(t, local)
			}
			m1, m2 := sipMsg("obs", 1, "first"), sipMsg("obs", 2, "")
			if p == UDP {
				// One datagram is one message.
				_, _ = cl.Write(m1)
				_, _ = cl.Write(m2)
			} else if _, err := cl.Write(append(append([]byte{}, m1...), m2...)); err != nil {
				t.Fatal(err) // two messages in one TCP segment
			}
			in := rec.next(t)
			rec.next(t)
			reply := sipMsg("obs", 3, "reply")
			remote := in.Remote
			if err := tr.Send(Outbound{Proto: p, From: local, To: remote, ConnID: in.ConnID, Data: reply}); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			if _, err := cl.Read(buf); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool {
				n := 0
				for _, x := range obs.all() {
					if x.Dir == observe.Out {
						n++
					}
				}
				return n == 1
			})
			ps := obs.all()
			var ins, outs []observe.Packet
			for _, x := range ps {
				if x.Dir == observe.In {
					ins = append(ins, x)
				} else {
					outs = append(outs, x)
				}
			}
			wantIn := [][]byte{m1, m2}
			if len(ins) != len(wantIn) {
				t.Fatalf("observer saw %d inbound messages, want %d", len(ins), len(wantIn))
			}
			for i, x := range ins {
				if !bytes.Equal(x.Data, wantIn[i]) || x.Local != local || x.Remote != remote || x.Mono == 0 {
					t.Fatalf("inbound %d: %+v", i, x)
				}
			}
			if !bytes.Equal(outs[0].Data, reply) || outs[0].Mono < ins[len(ins)-1].Mono || outs[0].Remote != remote {
				t.Fatalf("outbound: %+v", outs[0])
			}
		})
	}
}
