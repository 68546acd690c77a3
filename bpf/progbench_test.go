package bpf

import (
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// BenchmarkProg measures the ingress program alone with BPF_PROG_TEST_RUN
// on a synthetic UDP frame: "miss" is a packet on no SIP port (every
// non-SIP packet on the interface pays this), "hit" one that is captured
// into the ring (drained by a reader, as in production, which never asks
// for a wake-up: "wake64K" shows what the per-event backlog query of a
// wakeup_bytes setting costs). Needs root.
//
//	go test -run '^$' -bench Prog -benchtime 1000000x ./bpf/

// udpFrame is buildFrame's plain UDP 5070 -> 5060 frame with payload bytes.
func udpFrame(payload int) []byte {
	b := make([]byte, payload)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return buildFrame(frameOpts{payload: b})
}

// wakeupNever is WAKEUP_NEVER in sipcap.c, what Open sets for WakeupNever.
const wakeupNever = ^uint32(0)

func BenchmarkProg(b *testing.B) {
	for _, tc := range []struct {
		name    string
		ring    int
		port    uint16
		payload int
		wakeup  uint32
	}{
		{"miss", 32 << 20, 1, 600, wakeupNever},
		{"hit600-ring32M", 32 << 20, 5060, 600, wakeupNever},
		{"hit600-ring32M-wake64K", 32 << 20, 5060, 600, 65536},
		{"hit600-ring1M", 1 << 20, 5060, 600, wakeupNever},
		{"hit1200-ring32M", 32 << 20, 5060, 1200, wakeupNever},
	} {
		b.Run(tc.name, func(b *testing.B) {
			spec, err := loadSipcap()
			if err != nil {
				b.Fatal(err)
			}
			var pm [8192]byte
			pm[tc.port>>3] |= 1 << (tc.port & 7)
			for name, v := range map[string]any{
				sipcapVarSipPortMap: pm, sipcapVarSnaplen: uint32(2048), sipcapVarWakeupBytes: tc.wakeup,
			} {
				if err := spec.Variables[name].Set(v); err != nil {
					b.Fatal(err)
				}
			}
			spec.Maps[sipcapMapEvents].MaxEntries = uint32(tc.ring)
			var objs sipcapObjects
			if err := spec.LoadAndAssign(&objs, nil); err != nil {
				b.Skipf("cannot load sipcap (needs root and BPF): %v", err)
			}
			defer objs.Close()
			rd, err := ringbuf.NewReader(objs.Events)
			if err != nil {
				b.Fatal(err)
			}
			defer rd.Close()
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				var rec ringbuf.Record
				for {
					select {
					case <-stop:
						return
					default:
					}
					rd.SetDeadline(time.Now().Add(2 * time.Millisecond))
					_ = rd.ReadInto(&rec) // deadline errors just loop
				}
			}()
			frame := udpFrame(tc.payload)
			b.ResetTimer()
			_, d, err := objs.SipcapIngress.Benchmark(frame, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/run")
			close(stop)
			<-done
		})
	}
}
