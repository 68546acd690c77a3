//go:build linux

package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// frameOpts shapes a synthetic Ethernet + IPv4 + UDP 5070 -> 5060 frame.
type frameOpts struct {
	vlan      bool // one 802.1Q tag after the MAC addresses
	ipOptions int  // IPv4 option bytes (a multiple of 4, at most 40)
	payload   []byte
	cut       int // drop this many bytes from the end of the frame
}

func buildFrame(o frameOpts) []byte {
	var b []byte
	b = append(b, make([]byte, 12)...) // MACs
	if o.vlan {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, 42) // TCI: VLAN 42
	}
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	ihl := 20 + o.ipOptions
	ip := make([]byte, ihl)
	ip[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(ip[2:], uint16(ihl+8+len(o.payload)))
	ip[8], ip[9] = 64, 17
	copy(ip[12:], []byte{127, 0, 0, 1})
	copy(ip[16:], []byte{127, 0, 0, 2})
	for i := 20; i < ihl; i++ {
		ip[i] = 1 // NOP options
	}
	b = append(b, ip...)
	b = binary.BigEndian.AppendUint16(b, 5070)
	b = binary.BigEndian.AppendUint16(b, 5060)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(o.payload)))
	b = binary.BigEndian.AppendUint16(b, 0)
	b = append(b, o.payload...)
	return b[:len(b)-o.cut]
}

// TestProgHeaderOffsets runs the ingress program on synthetic frames
// (BPF_PROG_TEST_RUN) whose headers sit at every offset the parser
// handles: with and without a VLAN tag, with IPv4 options up to the
// largest header. The headers are read straight from the packet data, so
// this pins the bounds of that read; a frame cut inside its headers must
// produce no event (and must load: the verifier checks the bounds).
func TestProgHeaderOffsets(t *testing.T) {
	objs, rd, err := loadProgs(Config{Ports: []uint16{5060}, Snaplen: 2048, WakeupBytes: WakeupNever, RingBytes: 1 << 20})
	if err != nil {
		skipOrFail(t, err)
	}
	defer objs.Close()
	defer rd.Close()

	msg := []byte("OPTIONS sip:probe@127.0.0.2 SIP/2.0\r\nCall-ID: offsets\r\nContent-Length: 0\r\n\r\n")
	for _, tc := range []struct {
		name string
		o    frameOpts
		want bool
	}{
		{"plain", frameOpts{payload: msg}, true},
		{"vlan", frameOpts{vlan: true, payload: msg}, true},
		{"ip-options-40", frameOpts{ipOptions: 40, payload: msg}, true},
		{"vlan-ip-options-40", frameOpts{vlan: true, ipOptions: 40, payload: msg}, true},
		{"cut-in-udp-header", frameOpts{vlan: true, ipOptions: 40, cut: 4}, false},
		{"cut-in-ip-header", frameOpts{ipOptions: 40, cut: 8 + 30}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := buildFrame(tc.o)
			if _, err := objs.SipcapIngress.Run(&ebpf.RunOptions{Data: frame}); err != nil {
				t.Fatalf("test run: %v", err)
			}
			var rec ringbuf.Record
			rd.SetDeadline(time.Now().Add(50 * time.Millisecond))
			err := rd.ReadInto(&rec)
			if !tc.want {
				if err == nil {
					t.Fatalf("got an event of %d bytes for a frame cut inside its headers", len(rec.RawSample))
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("read: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("no event: %v", err)
			}
			var ev Event
			copy(ev.bytes(), rec.RawSample)
			if ev.Sport != 5070 || ev.Dport != 5060 || ev.L4Proto != 17 || ev.IpVersion != 4 {
				t.Errorf("event %d -> %d proto %d v%d, want 5070 -> 5060 UDP v4", ev.Sport, ev.Dport, ev.L4Proto, ev.IpVersion)
			}
			if int(ev.PayloadLen) != len(msg) || !bytes.Equal(ev.Payload(), msg) {
				t.Errorf("payload %d bytes %q, want %d bytes", ev.PayloadLen, ev.Payload(), len(msg))
			}
			if got, want := ev.Src().String(), "127.0.0.1:5070"; got != want {
				t.Errorf("src %s, want %s", got, want)
			}
		})
	}
}

// loadProgs loads the programs with cfg's constants (loadSpec, as Open
// does) without attaching them, and opens a reader on their ring, for
// BPF_PROG_TEST_RUN tests and benchmarks. A load error is classified.
func loadProgs(cfg Config) (*sipcapObjects, *ringbuf.Reader, error) {
	spec, err := loadSpec(cfg)
	if err != nil {
		return nil, nil, err
	}
	var objs sipcapObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, nil, classify("load sipcap", err)
	}
	rd, err := ringbuf.NewReader(objs.Events)
	if err != nil {
		objs.Close()
		return nil, nil, classify("open ring buffer reader", err)
	}
	return &objs, rd, nil
}
