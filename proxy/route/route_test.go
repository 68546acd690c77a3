package route

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/config"
)

const testConfig = `
destinations:
  pbx:
    hops: [127.0.0.1:5070, 127.0.0.1:5071;transport=tcp, "[::1]:5072"]
    failover_on: [408, 503, 603]
    probe: {enabled: true, failures_to_down: 3, successes_to_up: 2}
  lb:
    policy: weighted
    hops:
      - {uri: 10.0.0.1, weight: 3}
      - {uri: 10.0.0.2, weight: 1}
  emerg:
    hops: [10.0.0.9]
  quiet:
    hops: [10.0.0.10]
routes:
  - name: default          # written first on purpose: must be tried last
    to: pbx
  - name: options
    match: {methods: [OPTIONS]}
    to: quiet
  - name: emergency
    match: {methods: [INVITE], user_prefix: "112"}
    to: emerg
  - name: exact
    match: {user: "1000", host: Example.COM}
    to: lb
  - name: regex
    match: {uri_regex: '^sip:9\d+@'}
    to: lb
  - name: shadowed
    match: {methods: [INVITE], user_prefix: "1122"}
    to: quiet
`

func newRouter(t testing.TB) *Router {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg)
}

func uri(t testing.TB, s string) *sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatalf("ParseUri(%q): %v", s, err)
	}
	return &u
}

func TestMatch(t *testing.T) {
	r := newRouter(t)
	tests := []struct {
		method, ruri, want string
	}{
		{"INVITE", "sip:5555@example.com", "default"},
		{"OPTIONS", "sip:1000@example.com", "options"},
		{"INVITE", "sip:112@example.com", "emergency"},
		// First match wins: "shadowed" is later in the config.
		{"INVITE", "sip:11223@example.com", "emergency"},
		{"MESSAGE", "sip:112@example.com", "default"},
		// Methods are case-sensitive on the wire (RFC 3261 §7.1).
		{"invite", "sip:112@example.com", "default"},
		{"BYE", "sip:1000@EXAMPLE.com", "exact"},
		{"BYE", "sip:1000@example.org", "default"},
		{"BYE", "sip:10000@example.com", "default"},
		{"INVITE", "sip:9123@gw.example.net;user=phone", "regex"},
		{"INVITE", "sip:9abc@gw.example.net", "default"},
		{"INVITE", "", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.ruri, func(t *testing.T) {
			var u *sip.Uri
			if tt.ruri != "" {
				u = uri(t, tt.ruri)
			}
			got := r.Match(tt.method, u)
			if got == nil || got.Name != tt.want {
				t.Fatalf("Match = %+v, want route %q", got, tt.want)
			}
			if got.Set == nil {
				t.Fatal("route has no set")
			}
		})
	}
}

func TestSetsAndHops(t *testing.T) {
	r := newRouter(t)
	var names []string
	for _, s := range r.Sets() {
		names = append(names, s.Name)
	}
	if got := len(names); got != 4 || names[0] != "emerg" || names[3] != "quiet" {
		t.Errorf("Sets = %v, want sorted by name", names)
	}
	if n := len(r.Hops()); n != 7 {
		t.Errorf("Hops = %d, want 7", n)
	}
	pbx := r.Match("INVITE", nil).Set
	want := []string{"udp:127.0.0.1:5070", "tcp:127.0.0.1:5071", "udp:[::1]:5072"}
	for i, h := range pbx.Hops {
		if h.Key != want[i] || h.Index != i || h.Set != "pbx" {
			t.Errorf("hop %d = %+v, want key %s", i, h, want[i])
		}
	}
	for code, want := range map[int]bool{408: true, 503: true, 603: true, 500: false, 486: false, 200: false, -1: false, 700: false} {
		if got := pbx.FailoverOn(code); got != want {
			t.Errorf("FailoverOn(%d) = %v", code, got)
		}
	}
}

func keys(hops []*Hop) []string {
	out := make([]string, len(hops))
	for i, h := range hops {
		out[i] = h.Key
	}
	return out
}

func TestPlanOrdered(t *testing.T) {
	r := newRouter(t)
	h := NewHealth(r)
	pbx := r.Match("INVITE", nil).Set
	a, b, c := pbx.Hops[0], pbx.Hops[1], pbx.Hops[2]

	tests := []struct {
		name string
		down []*Hop
		want []*Hop
	}{
		{"all up", nil, []*Hop{a, b, c}},
		{"first down goes last", []*Hop{a}, []*Hop{b, c, a}},
		{"two down keep relative order", []*Hop{a, b}, []*Hop{c, a, b}},
		{"all down still tried", []*Hop{a, b, c}, []*Hop{a, b, c}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHealth(r)
			for _, hop := range tt.down {
				for range 3 {
					h.Report(hop, false, 0)
				}
			}
			got := pbx.Plan(42, h, nil)
			if len(got) != len(tt.want) {
				t.Fatalf("Plan = %v", keys(got))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("Plan = %v, want %v", keys(got), keys(tt.want))
				}
			}
		})
	}
	// nil Health: everything up.
	if got := pbx.Plan(0, nil, nil); len(got) != 3 || got[0] != a {
		t.Errorf("Plan(nil health) = %v", keys(got))
	}
	_ = h
}

func TestPlanWeightedDistribution(t *testing.T) {
	r := newRouter(t)
	h := NewHealth(r)
	lb := r.Match("INVITE", uri(t, "sip:9000@x")).Set
	heavy, light := lb.Hops[0], lb.Hops[1]

	rng := rand.New(rand.NewPCG(1, 2)) // deterministic
	const n = 40000
	first := map[*Hop]int{}
	buf := make([]*Hop, 0, 4)
	for range n {
		plan := lb.Plan(rng.Uint64(), h, buf[:0])
		if len(plan) != 2 || plan[0] == plan[1] {
			t.Fatalf("plan = %v", keys(plan))
		}
		first[plan[0]]++
	}
	// Expect 3:1, i.e. 30000 / 10000; allow 2% of n.
	if d := first[heavy] - 30000; d < -800 || d > 800 {
		t.Errorf("heavy first %d times, want ~30000 (light %d)", first[heavy], first[light])
	}

	// With the heavy hop down every first pick is the light one and the
	// heavy hop is still the last resort.
	for range 3 {
		h.Report(heavy, false, 0)
	}
	if h.Up(heavy) {
		t.Fatal("lb hops use default thresholds (3); heavy should be down")
	}
	for range 1000 {
		plan := lb.Plan(rng.Uint64(), h, buf[:0])
		if plan[0] != light || plan[1] != heavy {
			t.Fatalf("plan with heavy down = %v", keys(plan))
		}
	}
}

func TestPlanDoesNotAllocate(t *testing.T) {
	r := newRouter(t)
	h := NewHealth(r)
	lb := r.Match("INVITE", uri(t, "sip:9000@x")).Set
	buf := make([]*Hop, 0, 8)
	var seed uint64
	allocs := testing.AllocsPerRun(1000, func() {
		seed += 0x9e3779b97f4a7c15
		buf = lb.Plan(seed, h, buf[:0])
	})
	if allocs != 0 {
		t.Errorf("Plan allocates %.1f times per call", allocs)
	}
}

func TestHealthThresholds(t *testing.T) {
	r := newRouter(t)
	h := NewHealth(r)
	hop := r.Match("INVITE", nil).Set.Hops[0] // pbx: 3 to down, 2 to up

	type step struct {
		ok               bool
		wantUp, wantFlip bool
	}
	steps := []step{
		{false, true, false},
		{false, true, false},
		{true, true, false}, // success resets the failure streak
		{false, true, false},
		{false, true, false},
		{false, false, true}, // third consecutive failure
		{false, false, false},
		{true, false, false},
		{false, false, false}, // failure resets the success streak
		{true, false, false},
		{true, true, true}, // second consecutive success
		{true, true, false},
	}
	for i, s := range steps {
		up, changed := h.Report(hop, s.ok, 5*time.Millisecond)
		if up != s.wantUp || changed != s.wantFlip || h.Up(hop) != s.wantUp {
			t.Fatalf("step %d (ok=%v): up=%v changed=%v, want up=%v changed=%v", i, s.ok, up, changed, s.wantUp, s.wantFlip)
		}
	}
	var st HopState
	for _, s := range h.Snapshot() {
		if s.Hop == hop {
			st = s
		}
	}
	if !st.Up || st.Successes != 3 || st.Failures != 0 || st.LastRTT != 5*time.Millisecond {
		t.Errorf("snapshot = %+v", st)
	}

	// Passive failures count like failed probes...
	for i := range 3 {
		up, changed := h.Fail(hop)
		if want := i < 2; up != want || changed != !want {
			t.Fatalf("Fail %d: up=%v changed=%v", i, up, changed)
		}
	}
	// ...but not for sets without probing: nothing would revive the hop.
	quiet := r.Match("OPTIONS", nil).Set.Hops[0]
	for range 10 {
		if up, changed := h.Fail(quiet); !up || changed {
			t.Fatal("passive failure marked an unprobed hop down")
		}
	}
	// Hops from another Router are unknown: treated as up, ignored.
	other := newRouter(t).Hops()[0]
	if up, changed := h.Report(other, false, 0); !up || changed || !h.Up(other) {
		t.Error("foreign hop should be ignored")
	}
}

func TestProbeOK(t *testing.T) {
	for code, want := range map[int]bool{200: true, 404: true, 483: true, 500: true, 408: false, 503: false, 0: false} {
		if ProbeOK(code) != want {
			t.Errorf("ProbeOK(%d) = %v", code, !want)
		}
	}
}

// TestHealthConcurrent runs the prober, passive reporters and planners
// together; under -race it proves the read path needs no lock, and the
// flip count proves each transition is reported exactly once.
func TestHealthConcurrent(t *testing.T) {
	r := newRouter(t)
	h := NewHealth(r)
	pbx := r.Match("INVITE", nil).Set
	hop := pbx.Hops[0]

	var wg sync.WaitGroup
	var mu sync.Mutex
	flips := 0
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			buf := make([]*Hop, 0, 4)
			local := 0
			for i := range 5000 {
				switch i % 3 {
				case 0:
					if _, c := h.Report(hop, rng.IntN(2) == 0, time.Millisecond); c {
						local++
					}
				case 1:
					if _, c := h.Fail(hop); c {
						local++
					}
				default:
					if p := pbx.Plan(rng.Uint64(), h, buf[:0]); len(p) != 3 {
						t.Errorf("plan len %d", len(p))
						return
					}
					_ = h.Up(hop)
				}
			}
			mu.Lock()
			flips += local
			mu.Unlock()
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			_ = h.Snapshot()
		}
	}()
	wg.Wait()

	// Every flip alternates the state starting from up, so the final
	// state is determined by the parity of the number of flips.
	if wantUp := flips%2 == 0; h.Up(hop) != wantUp {
		t.Errorf("flips=%d but Up=%v: a transition was lost or double-reported", flips, h.Up(hop))
	}
}

func BenchmarkMatchAndPlan(b *testing.B) {
	r := newRouter(b)
	h := NewHealth(r)
	u := uri(b, "sip:1000@example.com")
	buf := make([]*Hop, 0, 8)
	var seed uint64
	b.ReportAllocs()
	for b.Loop() {
		seed++
		rt := r.Match("INVITE", u)
		buf = rt.Set.Plan(seed*0x9e3779b97f4a7c15, h, buf[:0])
	}
}
