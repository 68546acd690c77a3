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

func BenchmarkProg(b *testing.B) {
	for _, tc := range []struct {
		name    string
		ring    int
		port    uint16
		payload int
		wakeup  int
	}{
		{"miss", 32 << 20, 1, 600, WakeupNever},
		{"hit600-ring32M", 32 << 20, 5060, 600, WakeupNever},
		{"hit600-ring32M-wake64K", 32 << 20, 5060, 600, 65536},
		{"hit600-ring1M", 1 << 20, 5060, 600, WakeupNever},
		{"hit1200-ring32M", 32 << 20, 5060, 1200, WakeupNever},
	} {
		b.Run(tc.name, func(b *testing.B) {
			objs, rd, err := loadProgs(Config{Ports: []uint16{tc.port}, Snaplen: 2048, WakeupBytes: tc.wakeup, RingBytes: tc.ring})
			if err != nil {
				b.Skipf("cannot load sipcap (needs root and BPF): %v", err)
			}
			defer objs.Close()
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
