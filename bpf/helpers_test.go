//go:build linux

package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// bpfProbe: whether this host can load and attach sipcap at all, found
// once by opening (and closing) a capture on lo.
var bpfProbe struct {
	once sync.Once
	err  error
}

// requireBPF skips the test when this host cannot load and attach BPF
// (no privileges, old kernel), and fails it when CI=true, where BPF is
// required.
func requireBPF(t *testing.T) {
	t.Helper()
	bpfProbe.once.Do(func() {
		c, err := Open(Config{Interfaces: []string{"lo"}, Ports: []uint16{9}})
		if err == nil {
			err = c.Close()
		}
		bpfProbe.err = err
	})
	skipOrFail(t, bpfProbe.err)
}

// skipOrFail: ErrPermission/ErrUnsupported skip (fail with CI=true), other
// errors fail.
func skipOrFail(t *testing.T, err error) {
	t.Helper()
	switch {
	case err == nil:
		return
	case errors.Is(err, ErrPermission), errors.Is(err, ErrUnsupported):
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and BPF is unavailable: %v", err)
		}
		t.Skipf("BPF unavailable (CI=true would fail): %v", err)
	default:
		t.Fatalf("unexpected error: %v", err)
	}
}

// openCapture opens a capture, closed at cleanup.
func openCapture(t *testing.T, cfg Config) *Capture {
	t.Helper()
	requireBPF(t)
	c, err := Open(cfg)
	skipOrFail(t, err)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func monoNow() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return uint64(ts.Nano())
}

// flow identifies one direction of a conversation.
type flow struct{ src, dst string }

func flowOf(e *Event) flow { return flow{e.Src().String(), e.Dst().String()} }

// collect reads events until want returns true or timeout, keeping those
// keep accepts (other engineers' traffic shares lo). After want is
// satisfied it keeps reading for linger to catch duplicates.
func collect(t *testing.T, c *Capture, keep func(*Event) bool, want func([]Event) bool, timeout, linger time.Duration) []Event {
	t.Helper()
	var got []Event
	deadline := time.Now().Add(timeout)
	satisfiedAt := time.Time{}
	var ev Event
	for {
		now := time.Now()
		end := deadline
		if !satisfiedAt.IsZero() {
			end = satisfiedAt.Add(linger)
		}
		if now.After(end) {
			break
		}
		c.SetReadDeadline(end)
		err := c.Read(&ev)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if !keep(&ev) {
			continue
		}
		got = append(got, ev)
		if satisfiedAt.IsZero() && want(got) {
			satisfiedAt = time.Now()
		}
	}
	return got
}

func describe(evs []Event) string {
	var b strings.Builder
	for i := range evs {
		e := &evs[i]
		fmt.Fprintf(&b, "  ts=%d if=%d dir=%d proto=%d %s->%s len=%d cap=%d seq=%d flags=%#x %q\n",
			e.TsNs, e.Ifindex, e.Direction, e.L4Proto, e.Src(), e.Dst(), e.PayloadLen, e.CapLen,
			e.TcpSeq, e.TcpFlags, truncate(e.Payload(), 40))
	}
	return b.String()
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// payload builds a recognisable SIP-looking message of exactly n bytes.
func payload(tag string, n int) []byte {
	head := fmt.Sprintf("OPTIONS sip:%s@sipvigil.test SIP/2.0\r\nCall-ID: %s\r\n\r\n", tag, tag)
	b := bytes.Repeat([]byte("x"), n)
	copy(b, head)
	return b
}

// inNetns runs fn on a locked OS thread switched into ns, then restores
// the thread's namespace. Sockets and TCX links created in fn belong to ns.
func inNetns(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	done := make(chan struct{})
	var panicked any
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			panicked = err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			panicked = err
			return
		}
		defer func() {
			panicked = recover()
			if err := netns.Set(orig); err == nil {
				// Only a thread back in its own namespace may be reused.
				runtime.UnlockOSThread()
			}
		}()
		fn()
	}()
	<-done
	if panicked != nil {
		t.Fatalf("in netns: %v", panicked)
	}
}

// newNetns creates a named namespace "sv-test-<suffix>" without switching
// the caller's thread into it, and deletes it at cleanup.
func newNetns(t *testing.T, suffix string) (netns.NsHandle, string) {
	t.Helper()
	name := fmt.Sprintf("sv-test-%d-%s", os.Getpid()%100000, suffix)
	var ns netns.NsHandle
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, e := netns.Get()
		if e != nil {
			err = e
			return
		}
		defer orig.Close()
		ns, err = netns.NewNamed(name) // switches this thread into it
		if e := netns.Set(orig); e == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	inNetns(t, ns, func() {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			panic(err)
		}
	})
	return ns, name
}

// ourFilters lists the legacy filters on ifname (in the calling thread's
// namespace) whose name marks them as sipvigil's.
func ourFilters(t *testing.T, ifname string) []string {
	t.Helper()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatalf("link %s: %v", ifname, err)
	}
	var names []string
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := netlink.FilterList(l, parent)
		if err != nil {
			continue // no clsact qdisc
		}
		for _, f := range fs {
			if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, legacyNamePrefix) {
				names = append(names, bf.Name)
			}
		}
	}
	return names
}

func loIndex(t *testing.T) int {
	t.Helper()
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	return ifi.Index
}

// keepQdiscsClean: if ifname has no clsact qdisc now, delete the one a
// legacy-mode Open adds once the test is done, provided no filters were
// left in it (lo is shared with other tests). Register before openCapture
// so it runs after the capture's Close.
func keepQdiscsClean(t *testing.T, ifname string) {
	t.Helper()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	if clsact(t, l) != nil {
		return
	}
	t.Cleanup(func() {
		q := clsact(t, l)
		if q == nil {
			return
		}
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			if fs, err := netlink.FilterList(l, parent); err != nil || len(fs) > 0 {
				return
			}
		}
		if err := netlink.QdiscDel(q); err != nil {
			t.Errorf("delete clsact on %s: %v", ifname, err)
		}
	})
}

func clsact(t *testing.T, l netlink.Link) netlink.Qdisc {
	qs, err := netlink.QdiscList(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			return q
		}
	}
	return nil
}
