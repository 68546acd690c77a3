//go:build linux

package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The C struct and the Go type must agree; a mismatch would make Read
// fail on every record.
func TestEventLayout(t *testing.T) {
	if SnapMax != 2048 {
		t.Errorf("SnapMax = %d, want 2048 (SNAP_MAX in sipcap.c)", SnapMax)
	}
	if got := unsafe.Sizeof(Event{}); got != 72+2048 {
		t.Errorf("sizeof(Event) = %d, want %d", got, 72+2048)
	}
	if got := unsafe.Offsetof(Event{}.Data); got != 72 {
		t.Errorf("offsetof(Data) = %d, want 72", got)
	}
}

func TestLegacyOwner(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pid   int
		pidNS uint64
		ok    bool
	}{
		{"sipvigil:pid=123:pidns=4026531836:ingress", 123, 4026531836, true},
		{"sipvigil:pid=7:pidns=1:egress", 7, 1, true},
		{"sipvigil:pid=x:pidns=1:egress", 0, 1, false},
		{"sipvigil:pid=12", 12, 0, false},
		{"cil_from_netdev", 0, 0, false},
	} {
		pid, ns, ok := legacyOwner(tc.name)
		if ok != tc.ok || (ok && (pid != tc.pid || ns != tc.pidNS)) {
			t.Errorf("legacyOwner(%q) = %d, %d, %v; want %d, %d, %v", tc.name, pid, ns, ok, tc.pid, tc.pidNS, tc.ok)
		}
	}
}

func TestConfigNormalize(t *testing.T) {
	cfg := Config{Interfaces: []string{"lo"}, Ports: []uint16{5060}, RingBytes: 5000}
	if err := cfg.normalize(); err != nil {
		t.Fatal(err)
	}
	if cfg.Snaplen != DefaultSnaplen || cfg.RingBytes != 8192 {
		t.Errorf("normalized snaplen=%d ring=%d, want %d 8192", cfg.Snaplen, cfg.RingBytes, DefaultSnaplen)
	}
	for _, bad := range []Config{
		{Ports: []uint16{5060}},
		{Interfaces: []string{"lo"}},
		{Interfaces: []string{"lo"}, Ports: []uint16{0}},
		{Interfaces: []string{"lo"}, Ports: []uint16{5060}, Snaplen: SnapMax + 1},
	} {
		if err := bad.normalize(); err == nil {
			t.Errorf("normalize(%+v) succeeded", bad)
		}
	}
}

// TestLoopback: UDP datagrams and a TCP exchange over lo, IPv4 and IPv6,
// in both attach modes. Every payload-carrying packet must appear exactly
// once at egress and once at ingress (lo shows a packet at both hooks),
// with the right tuple, lengths, payload and timestamps.
func TestLoopback(t *testing.T) {
	for _, mode := range []string{ModeTCX, ModeLegacy} {
		for _, fam := range []struct{ name, host string }{{"ipv4", "127.0.0.1"}, {"ipv6", "::1"}} {
			t.Run(mode+"/"+fam.name, func(t *testing.T) {
				testLoopback(t, mode, fam.host)
			})
		}
	}
}

type sent struct {
	f    flow
	data []byte
}

func testLoopback(t *testing.T, mode, host string) {
	requireBPF(t)
	udpSrv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Skipf("no %s loopback: %v", host, err)
	}
	defer udpSrv.Close()
	tcpLn, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	udpPort := uint16(udpSrv.LocalAddr().(*net.UDPAddr).Port)
	tcpPort := uint16(tcpLn.Addr().(*net.TCPAddr).Port)

	if mode == ModeLegacy {
		keepQdiscsClean(t, "lo")
	}
	c := openCapture(t, Config{
		Interfaces:  []string{"lo"},
		Ports:       []uint16{udpPort, tcpPort},
		ForceLegacy: mode == ModeLegacy,
	})
	if c.Mode() != mode {
		t.Fatalf("Mode() = %q, want %q", c.Mode(), mode)
	}
	if mode == ModeLegacy {
		if names := ourFilters(t, "lo"); len(names) < 2 {
			t.Fatalf("legacy filters on lo: %v, want ours at ingress and egress", names)
		}
	}

	var msgs []sent
	t0 := monoNow()

	// UDP: client -> server, server echoes a reply (source port in set).
	cli, err := net.DialUDP("udp", nil, udpSrv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cliAddr := cli.LocalAddr().(*net.UDPAddr).AddrPort()
	srvAddr := udpSrv.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 65536)
	for i := range 5 {
		req := payload(fmt.Sprintf("udp-req-%d", i), 200+i*100)
		if _, err := cli.Write(req); err != nil {
			t.Fatal(err)
		}
		n, from, err := udpSrv.ReadFromUDPAddrPort(buf)
		if err != nil || n != len(req) {
			t.Fatalf("server read: %d %v", n, err)
		}
		resp := payload(fmt.Sprintf("udp-resp-%d", i), 150)
		if _, err := udpSrv.WriteToUDPAddrPort(resp, from); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Read(buf); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs,
			sent{flow{norm(cliAddr), norm(srvAddr)}, req},
			sent{flow{norm(srvAddr), norm(cliAddr)}, resp})
	}

	// TCP: one request and one response, each a single segment on lo.
	accepted := make(chan error, 1)
	tcpReq := payload("tcp-req", 700)
	tcpResp := payload("tcp-resp", 300)
	go func() {
		conn, err := tcpLn.Accept()
		if err != nil {
			accepted <- err
			return
		}
		defer conn.Close()
		got := make([]byte, len(tcpReq))
		if _, err := io.ReadFull(conn, got); err != nil {
			accepted <- err
			return
		}
		_, err = conn.Write(tcpResp)
		accepted <- err
	}()
	tc, err := net.DialTCP("tcp", nil, tcpLn.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	tcCli := tc.LocalAddr().(*net.TCPAddr).AddrPort()
	tcSrv := tc.RemoteAddr().(*net.TCPAddr).AddrPort()
	if _, err := tc.Write(tcpReq); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(tc, make([]byte, len(tcpResp))); err != nil {
		t.Fatal(err)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	tc.Close()
	msgs = append(msgs,
		sent{flow{norm(tcCli), norm(tcSrv)}, tcpReq},
		sent{flow{norm(tcSrv), norm(tcCli)}, tcpResp})
	t1 := monoNow()

	flows := map[flow]bool{}
	for _, m := range msgs {
		flows[m.f] = true
	}
	keep := func(e *Event) bool { return flows[flowOf(e)] }
	want := func(evs []Event) bool { return len(evs) >= 2*len(msgs) }
	evs := collect(t, c, keep, want, 5*time.Second, 300*time.Millisecond)
	if len(evs) != 2*len(msgs) {
		t.Fatalf("got %d events for our flows, want %d (one per hook per message):\n%s", len(evs), 2*len(msgs), describe(evs))
	}

	lo := uint32(loIndex(t))
	wantVersion := uint8(4)
	if strings.Contains(host, ":") {
		wantVersion = 6
	}
	// Each message: exactly one egress then one ingress event.
	var lastEgress uint64
	for i, m := range msgs {
		var eg, in *Event
		for j := range evs {
			e := &evs[j]
			if flowOf(e) != m.f || !bytes.Equal(e.Payload(), m.data) {
				continue
			}
			switch e.Direction {
			case DirEgress:
				if eg != nil {
					t.Errorf("msg %d: two egress events", i)
				}
				eg = e
			case DirIngress:
				if in != nil {
					t.Errorf("msg %d: two ingress events", i)
				}
				in = e
			default:
				t.Errorf("msg %d: direction %d", i, e.Direction)
			}
		}
		if eg == nil || in == nil {
			t.Fatalf("msg %d (%v, %d bytes): egress=%v ingress=%v\n%s", i, m.f, len(m.data), eg != nil, in != nil, describe(evs))
		}
		if !(t0 <= eg.TsNs && eg.TsNs <= in.TsNs && in.TsNs <= t1) {
			t.Errorf("msg %d: timestamps not ordered: t0=%d egress=%d ingress=%d t1=%d", i, t0, eg.TsNs, in.TsNs, t1)
		}
		if eg.TsNs < lastEgress {
			t.Errorf("msg %d: egress at %d before previous message's %d", i, eg.TsNs, lastEgress)
		}
		lastEgress = eg.TsNs
		isTCP := i >= len(msgs)-2
		for _, e := range []*Event{eg, in} {
			wantProto, l4hdr := uint8(ProtoUDP), 8
			if isTCP {
				wantProto, l4hdr = ProtoTCP, 32 // Linux always sends timestamps on lo
			}
			l3hdr := 20
			if wantVersion == 6 {
				l3hdr = 40
			}
			if e.Ifindex != lo || e.IpVersion != wantVersion || e.L4Proto != wantProto ||
				int(e.PayloadLen) != len(m.data) || int(e.CapLen) != len(m.data) || e.Flags != 0 ||
				int(e.PktLen) != 14+l3hdr+l4hdr+len(m.data) {
				t.Errorf("msg %d: bad event:\n%s", i, describe([]Event{*e}))
			}
		}
		if isTCP {
			if eg.TcpSeq != in.TcpSeq || eg.TcpFlags&0x08 == 0 /* PSH */ {
				t.Errorf("msg %d: tcp seq egress %d ingress %d flags %#x", i, eg.TcpSeq, in.TcpSeq, eg.TcpFlags)
			}
		} else if eg.TcpSeq != 0 || eg.TcpFlags != 0 {
			t.Errorf("msg %d: UDP event with TCP fields", i)
		}
	}

	cnt, err := c.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt.RingDrops != 0 || cnt.Captured < uint64(len(evs)) || cnt.Seen < cnt.Captured {
		t.Errorf("counters %+v, captured %d events", cnt, len(evs))
	}
	t.Logf("mode=%s %d events verified; counters %+v", c.Mode(), len(evs), cnt)

	if mode == ModeLegacy {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for _, n := range ourFilters(t, "lo") {
			if strings.HasPrefix(n, fmt.Sprintf("%s%d:", legacyNamePrefix, os.Getpid())) {
				t.Errorf("filter %s still on lo after Close", n)
			}
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Read(new(Event)); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
}

// norm renders an address the way Event.Src/Dst do (IPv4 unmapped).
func norm(ap netip.AddrPort) string {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// TestSnaplen: a payload longer than snaplen is cut to snaplen, and the
// event still reports the real payload length.
func TestSnaplen(t *testing.T) {
	requireBPF(t)
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	port := uint16(srv.LocalAddr().(*net.UDPAddr).Port)
	for _, tc := range []struct{ snaplen, size, wantCap int }{
		{100, 1000, 100},
		{0, 3000, DefaultSnaplen}, // default snaplen, a payload beyond SnapMax
		{SnapMax, SnapMax, SnapMax},
		{1, 0, 0}, // empty datagram: an event with nothing to copy
	} {
		t.Run(fmt.Sprintf("snaplen=%d/size=%d", tc.snaplen, tc.size), func(t *testing.T) {
			c := openCapture(t, Config{Interfaces: []string{"lo"}, Ports: []uint16{port}, Snaplen: tc.snaplen, RingBytes: 1 << 16})
			cli, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			msg := payload("snap", tc.size)
			if _, err := cli.Write(msg); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Read(make([]byte, 65536)); err != nil {
				t.Fatal(err)
			}
			f := flow{norm(cli.LocalAddr().(*net.UDPAddr).AddrPort()), norm(srv.LocalAddr().(*net.UDPAddr).AddrPort())}
			evs := collect(t, c, func(e *Event) bool { return flowOf(e) == f },
				func(evs []Event) bool { return len(evs) >= 2 }, 5*time.Second, 100*time.Millisecond)
			if len(evs) != 2 {
				t.Fatalf("got %d events, want 2:\n%s", len(evs), describe(evs))
			}
			for i := range evs {
				e := &evs[i]
				if int(e.PayloadLen) != tc.size || int(e.CapLen) != tc.wantCap ||
					!bytes.Equal(e.Payload(), msg[:tc.wantCap]) || e.Truncated() != (tc.wantCap < tc.size) {
					t.Errorf("event: payload_len=%d cap_len=%d truncated=%v; want %d %d",
						e.PayloadLen, e.CapLen, e.Truncated(), tc.size, tc.wantCap)
				}
			}
		})
	}
}

// TestRingFull: with a one-record ring and no reader, the first event is
// kept and the rest are counted as ring drops, never silently lost.
func TestRingFull(t *testing.T) {
	requireBPF(t)
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	port := uint16(srv.LocalAddr().(*net.UDPAddr).Port)
	c := openCapture(t, Config{Interfaces: []string{"lo"}, Ports: []uint16{port}, RingBytes: 1})
	if _, size := c.RingBacklog(); size != os.Getpagesize() {
		t.Fatalf("ring size %d, want one page", size)
	}
	cli, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	const n = 4 // 1.5 KB records: two fit in the one-page ring
	for i := range n {
		if _, err := cli.Write(payload(fmt.Sprintf("full-%d", i), 1500)); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Read(make([]byte, 2048)); err != nil {
			t.Fatal(err)
		}
	}
	cnt, err := c.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// n datagrams, each seen at egress and ingress of lo.
	if cnt.Captured < 1 || cnt.RingDrops < 1 || cnt.Captured+cnt.RingDrops != 2*n {
		t.Errorf("counters %+v, want captured+ring_drops = %d with both > 0", cnt, 2*n)
	}
	if pending, _ := c.RingBacklog(); pending == 0 {
		t.Errorf("ring backlog 0 with an unread event")
	}
}

// TestCloseUnblocksRead: Close from another goroutine ends a blocked Read
// with ErrClosed.
func TestCloseUnblocksRead(t *testing.T) {
	requireBPF(t)
	c, err := Open(Config{Interfaces: []string{"lo"}, Ports: []uint16{9}})
	skipOrFail(t, err)
	done := make(chan error, 1)
	go func() {
		var ev Event
		done <- c.Read(&ev)
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Read = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

// TestVethNetns: UDP over a veth pair between two namespaces created by
// the test, IPv4 and IPv6. A datagram from A to B is seen at egress on A's
// end (capture A) and at ingress on B's end (capture B).
func TestVethNetns(t *testing.T) {
	requireBPF(t)
	nsA, _ := newNetns(t, "a")
	nsB, _ := newNetns(t, "b")
	var idxA, idxB int
	inNetns(t, nsA, func() {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "svA"}, PeerName: "svB"}
		must(netlink.LinkAdd(veth))
		peer, err := netlink.LinkByName("svB")
		must(err)
		must(netlink.LinkSetNsFd(peer, int(nsB)))
		l, err := netlink.LinkByName("svA")
		must(err)
		idxA = l.Attrs().Index
		must(addAddr(l, "10.201.0.1/24"))
		must(addAddr(l, "fd00:5ee::1/64"))
		must(netlink.LinkSetUp(l))
	})
	inNetns(t, nsB, func() {
		l, err := netlink.LinkByName("svB")
		must(err)
		idxB = l.Attrs().Index
		must(addAddr(l, "10.201.0.2/24"))
		must(addAddr(l, "fd00:5ee::2/64"))
		must(netlink.LinkSetUp(l))
	})

	for _, fam := range []struct{ name, a, b string }{
		{"ipv4", "10.201.0.1", "10.201.0.2"},
		{"ipv6", "fd00:5ee::1", "fd00:5ee::2"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			var srv, cli *net.UDPConn
			var capA, capB *Capture
			inNetns(t, nsB, func() {
				var err error
				srv, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(fam.b)})
				must(err)
			})
			defer srv.Close()
			port := uint16(srv.LocalAddr().(*net.UDPAddr).Port)
			inNetns(t, nsB, func() { capB = openCapture(t, Config{Interfaces: []string{"svB"}, Ports: []uint16{port}}) })
			inNetns(t, nsA, func() {
				capA = openCapture(t, Config{Interfaces: []string{"svA"}, Ports: []uint16{port}})
				var err error
				cli, err = net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(fam.a)}, srv.LocalAddr().(*net.UDPAddr))
				must(err)
			})
			defer cli.Close()

			const n = 3
			var msgs [][]byte
			for i := range n {
				m := payload(fmt.Sprintf("veth-%s-%d", fam.name, i), 400)
				msgs = append(msgs, m)
				if _, err := cli.Write(m); err != nil {
					t.Fatal(err)
				}
				srv.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := srv.Read(make([]byte, 2048)); err != nil {
					t.Fatalf("server read %d: %v", i, err)
				}
			}
			f := flow{norm(cli.LocalAddr().(*net.UDPAddr).AddrPort()), norm(srv.LocalAddr().(*net.UDPAddr).AddrPort())}
			keep := func(e *Event) bool { return flowOf(e) == f }
			enough := func(evs []Event) bool { return len(evs) >= n }
			evA := collect(t, capA, keep, enough, 5*time.Second, 200*time.Millisecond)
			evB := collect(t, capB, keep, enough, 5*time.Second, 200*time.Millisecond)
			check := func(side string, evs []Event, dir uint8, ifindex int) {
				if len(evs) != n {
					t.Fatalf("%s: %d events, want %d:\n%s", side, len(evs), n, describe(evs))
				}
				for i := range evs {
					e := &evs[i]
					if e.Direction != dir || int(e.Ifindex) != ifindex || !bytes.Equal(e.Payload(), msgs[i]) {
						t.Errorf("%s: event %d (want dir %d ifindex %d):\n%s", side, i, dir, ifindex, describe(evs[i:i+1]))
					}
				}
			}
			check("A (svA)", evA, DirEgress, idxA)
			check("B (svB)", evB, DirIngress, idxB)
			for i := range n {
				if evA[i].TsNs > evB[i].TsNs {
					t.Errorf("msg %d: egress %d after ingress %d", i, evA[i].TsNs, evB[i].TsNs)
				}
			}
		})
	}
}

func addAddr(l netlink.Link, cidr string) error {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	a.Flags = unix.IFA_F_NODAD // usable at once, no 1 s duplicate detection
	return netlink.AddrAdd(l, a)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// TestLegacyStaleFilters: a process that attached legacy filters and was
// SIGKILLed leaves them behind; the next Open deletes them, and its own
// Close leaves none.
func TestLegacyStaleFilters(t *testing.T) {
	requireBPF(t)
	ns, nsName := newNetns(t, "stale")
	inNetns(t, ns, func() {
		// A veth with both ends here: the dummy module may be missing.
		must(netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "svstale"}, PeerName: "svstale1"}))
		l, err := netlink.LinkByName("svstale")
		must(err)
		must(netlink.LinkSetUp(l))
	})

	// The helper attaches in legacy mode, reports ready, and waits to die.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), "SIPCAP_HELPER_NETNS="+nsName, "SIPCAP_HELPER_IFACE=svstale")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 64)
	n, _ := io.ReadAtLeast(out, line, 5)
	if !strings.HasPrefix(string(line[:n]), "ready") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper did not attach: %q", line[:n])
	}
	helperPid := cmd.Process.Pid
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() // reap: a zombie still counts as alive for kill(pid, 0)

	var stale, during, after []string
	inNetns(t, ns, func() {
		stale = ourFilters(t, "svstale")
		c, err := Open(Config{Interfaces: []string{"svstale"}, Ports: []uint16{5060}, ForceLegacy: true})
		must(err)
		during = ourFilters(t, "svstale")
		must(c.Close())
		after = ourFilters(t, "svstale")
	})
	helperPrefix := fmt.Sprintf("%s%d:", legacyNamePrefix, helperPid)
	myPrefix := fmt.Sprintf("%s%d:", legacyNamePrefix, os.Getpid())
	if len(stale) != 2 || !allPrefixed(stale, helperPrefix) {
		t.Fatalf("after SIGKILL: filters %v, want the helper's two (%s…)", stale, helperPrefix)
	}
	if len(during) != 2 || !allPrefixed(during, myPrefix) {
		t.Errorf("after Open: filters %v, want only ours (%s…)", during, myPrefix)
	}
	if len(after) != 0 {
		t.Errorf("after Close: filters %v remain", after)
	}
}

func allPrefixed(ss []string, prefix string) bool {
	return !slices.ContainsFunc(ss, func(s string) bool { return !strings.HasPrefix(s, prefix) })
}

// TestHelperProcess is the crashed process of TestLegacyStaleFilters; it
// does nothing unless run by it.
func TestHelperProcess(t *testing.T) {
	nsName := os.Getenv("SIPCAP_HELPER_NETNS")
	if nsName == "" {
		t.Skip("helper for TestLegacyStaleFilters")
	}
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	inNetns(t, ns, func() {
		_, err = Open(Config{Interfaces: []string{os.Getenv("SIPCAP_HELPER_IFACE")}, Ports: []uint16{5060}, ForceLegacy: true})
	})
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	time.Sleep(time.Hour) // until SIGKILL
}
