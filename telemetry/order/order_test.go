package order

import (
	"slices"
	"testing"
)

func resp(status int, in, out int64, ref int) Forward {
	return Forward{In: in, Out: out, Method: "INVITE", Status: status, CSeq: 1, Ref: ref}
}

func req(method string, cseq uint32, in, out int64, ref int) Forward {
	return Forward{In: in, Out: out, Method: method, CSeq: cseq, Ref: ref}
}

func kinds(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Kind)
	}
	return out
}

func TestKinds(t *testing.T) {
	want := []string{ResponseReorder, ProvisionalAfterFinal, RequestReorder}
	if !slices.Equal(Kinds, want) {
		t.Fatalf("Kinds = %q, want %q", Kinds, want)
	}
	seen := map[string]bool{}
	for _, k := range Kinds {
		if k == "" || seen[k] {
			t.Fatalf("Kinds has an empty or duplicate kind: %q", Kinds)
		}
		seen[k] = true
	}
}

func TestResponsesInOrder(t *testing.T) {
	fw := []Forward{resp(180, 100, 110, 0), resp(200, 200, 210, 1)}
	if vs := Responses(fw); len(vs) != 0 {
		t.Fatalf("Responses(in order) = %v, want none", vs)
	}
	// The input order of the slice must not matter.
	slices.Reverse(fw)
	if vs := Responses(fw); len(vs) != 0 {
		t.Fatalf("Responses(in order, reversed slice) = %v, want none", vs)
	}
}

func TestResponsesEmpty(t *testing.T) {
	if vs := Responses(nil); len(vs) != 0 {
		t.Fatalf("Responses(nil) = %v", vs)
	}
	if vs := Responses([]Forward{resp(200, 1, 2, 0)}); len(vs) != 0 {
		t.Fatalf("Responses(one) = %v", vs)
	}
}

func TestResponsesProvisionalAfterFinalSwapped(t *testing.T) {
	// 180 entered first but left after the 200: both "reordered" and
	// "provisional after final" hold; the pair must yield exactly one
	// violation, of the more specific kind.
	r180 := resp(180, 100, 300, 7)
	r200 := resp(200, 200, 250, 9)
	for _, fw := range [][]Forward{{r180, r200}, {r200, r180}} {
		vs := Responses(fw)
		if len(vs) != 1 {
			t.Fatalf("Responses(%v) = %v, want exactly one violation", fw, vs)
		}
		v := vs[0]
		if v.Kind != ProvisionalAfterFinal {
			t.Fatalf("kind = %q, want %q", v.Kind, ProvisionalAfterFinal)
		}
		if v.First != r200 || v.Second != r180 {
			t.Fatalf("First/Second = %+v / %+v, want the 200 then the 180", v.First, v.Second)
		}
		if v.First.Ref != 9 || v.Second.Ref != 7 {
			t.Fatalf("Refs not returned as is: %d, %d", v.First.Ref, v.Second.Ref)
		}
	}
}

func TestResponsesProvisionalReceivedAfterFinal(t *testing.T) {
	// A 180 that arrived after the 200 and was forwarded after it: the
	// arrival order was kept, but a 1xx must never follow a final.
	r200 := resp(200, 100, 150, 0)
	r180 := resp(180, 200, 250, 1)
	for _, fw := range [][]Forward{{r200, r180}, {r180, r200}} {
		vs := Responses(fw)
		if len(vs) != 1 || vs[0].Kind != ProvisionalAfterFinal {
			t.Fatalf("Responses(%v) = %v, want one %s", fw, vs, ProvisionalAfterFinal)
		}
		if vs[0].First.Status != 200 || vs[0].Second.Status != 180 {
			t.Fatalf("First/Second = %d/%d, want 200/180", vs[0].First.Status, vs[0].Second.Status)
		}
	}
}

func TestResponsesProvisionalBeforeFinalOK(t *testing.T) {
	// A 180 that arrived after the 200 but was forwarded before it is not a
	// provisional-after-final; it is a reorder of the two.
	r200 := resp(200, 100, 300, 0)
	r180 := resp(180, 200, 250, 1)
	vs := Responses([]Forward{r200, r180})
	if len(vs) != 1 || vs[0].Kind != ResponseReorder {
		t.Fatalf("Responses = %v, want one %s", vs, ResponseReorder)
	}
	if vs[0].First != r200 || vs[0].Second != r180 {
		t.Fatalf("First/Second = %+v / %+v", vs[0].First, vs[0].Second)
	}
}

func TestResponsesProvisionalReorder(t *testing.T) {
	// 183 entered before the 180 but left after it.
	r183 := resp(183, 100, 400, 0)
	r180 := resp(180, 200, 300, 1)
	for _, fw := range [][]Forward{{r183, r180}, {r180, r183}} {
		vs := Responses(fw)
		if len(vs) != 1 {
			t.Fatalf("Responses(%v) = %v, want one", fw, vs)
		}
		v := vs[0]
		if v.Kind != ResponseReorder {
			t.Fatalf("kind = %q, want %q", v.Kind, ResponseReorder)
		}
		if v.First != r183 || v.Second != r180 {
			t.Fatalf("First/Second = %v / %v, want 183 then 180", v.First.Label(), v.Second.Label())
		}
	}
}

func TestResponsesFinalsReordered(t *testing.T) {
	// Two 2xx of a forked INVITE leaving in the opposite order.
	a := resp(200, 100, 500, 0)
	b := resp(200, 200, 300, 1)
	vs := Responses([]Forward{b, a})
	if !slices.Equal(kinds(vs), []string{ResponseReorder}) {
		t.Fatalf("Responses = %v, want one %s", vs, ResponseReorder)
	}
}

func TestResponsesSameArrival(t *testing.T) {
	// Equal entry times give no order to keep.
	vs := Responses([]Forward{resp(180, 100, 300, 0), resp(183, 100, 200, 1)})
	if len(vs) != 0 {
		t.Fatalf("Responses(same In) = %v, want none", vs)
	}
}

func TestResponsesSameDeparture(t *testing.T) {
	// Leaving in the same nanosecond is not leaving in the opposite order.
	vs := Responses([]Forward{resp(180, 100, 300, 0), resp(183, 200, 300, 1)})
	if len(vs) != 0 {
		t.Fatalf("Responses(same Out) = %v, want none", vs)
	}
	if v, ok := RequestPair(req("ACK", 1, 100, 300, 0), req("INVITE", 2, 200, 300, 1)); ok {
		t.Fatalf("RequestPair(same Out) = %v, want none", v)
	}
}

func TestResponsesThreeOneInversion(t *testing.T) {
	// 180, 183, 200 arrive in that order; the 180 and 183 swap on the way
	// out, the 200 leaves last. One inverted pair → one violation.
	r180 := resp(180, 100, 260, 0)
	r183 := resp(183, 150, 200, 1)
	r200 := resp(200, 300, 400, 2)
	perms := [][]Forward{
		{r180, r183, r200}, {r180, r200, r183}, {r183, r180, r200},
		{r183, r200, r180}, {r200, r180, r183}, {r200, r183, r180},
	}
	for _, fw := range perms {
		vs := Responses(fw)
		if len(vs) != 1 {
			t.Fatalf("Responses(%v) = %v, want exactly one violation", fw, vs)
		}
		if vs[0].Kind != ResponseReorder || vs[0].First != r180 || vs[0].Second != r183 {
			t.Fatalf("violation = %+v, want 180 before 183 reorder", vs[0])
		}
	}
}

func TestResponsesEveryPairOnce(t *testing.T) {
	// Three responses left in exactly reverse order: three pairs, each one
	// violation, never more.
	r180 := resp(180, 100, 600, 0)
	r183 := resp(183, 200, 500, 1)
	r200 := resp(200, 300, 400, 2)
	vs := Responses([]Forward{r180, r183, r200})
	got := kinds(vs)
	slices.Sort(got)
	want := []string{ProvisionalAfterFinal, ProvisionalAfterFinal, ResponseReorder}
	if !slices.Equal(got, want) {
		t.Fatalf("kinds = %q, want %q", got, want)
	}
}

func TestRequestPairInOrder(t *testing.T) {
	ack := req("ACK", 1, 100, 150, 0)
	reinvite := req("INVITE", 2, 200, 250, 0)
	if v, ok := RequestPair(ack, reinvite); ok {
		t.Fatalf("RequestPair(in order) = %v, want none", v)
	}
	if v, ok := RequestPair(reinvite, ack); ok {
		t.Fatalf("RequestPair(in order, swapped args) = %v, want none", v)
	}
	if vs := Requests([]Forward{reinvite, ack}); len(vs) != 0 {
		t.Fatalf("Requests(in order) = %v, want none", vs)
	}
}

func TestRequestPairOvertaken(t *testing.T) {
	// The ACK entered first, the re-INVITE left first.
	ack := req("ACK", 1, 100, 400, 3)
	reinvite := req("INVITE", 2, 200, 300, 4)
	for _, args := range [][2]Forward{{ack, reinvite}, {reinvite, ack}} {
		v, ok := RequestPair(args[0], args[1])
		if !ok {
			t.Fatalf("RequestPair(%v, %v): no violation", args[0].Label(), args[1].Label())
		}
		if v.Kind != RequestReorder {
			t.Fatalf("kind = %q, want %q", v.Kind, RequestReorder)
		}
		if v.First != ack || v.Second != reinvite {
			t.Fatalf("First/Second = %+v / %+v, want ACK then INVITE", v.First, v.Second)
		}
	}
	vs := Requests([]Forward{reinvite, ack})
	if len(vs) != 1 || vs[0].Kind != RequestReorder {
		t.Fatalf("Requests = %v, want one %s", vs, RequestReorder)
	}
}

func TestRequestPairSameArrival(t *testing.T) {
	if v, ok := RequestPair(req("ACK", 1, 100, 400, 0), req("INVITE", 2, 100, 300, 1)); ok {
		t.Fatalf("RequestPair(same In) = %v, want none", v)
	}
}

func TestRequestsThreeOneInversion(t *testing.T) {
	invite := req("INVITE", 1, 100, 110, 0)
	ack := req("ACK", 1, 200, 400, 1)
	reinvite := req("INVITE", 2, 300, 350, 2)
	vs := Requests([]Forward{reinvite, invite, ack})
	if len(vs) != 1 {
		t.Fatalf("Requests = %v, want exactly one", vs)
	}
	if vs[0].First != ack || vs[0].Second != reinvite {
		t.Fatalf("violation = %+v, want ACK then re-INVITE", vs[0])
	}
}

func TestLabel(t *testing.T) {
	cases := []struct {
		f    Forward
		want string
	}{
		{Forward{Method: "INVITE"}, "INVITE"},
		{Forward{Method: "ACK"}, "ACK"},
		{Forward{Method: "INVITE", Status: 180}, "180"},
		{Forward{Method: "BYE", Status: 200}, "200"},
		{Forward{Method: "INVITE", Status: 487}, "487"},
	}
	for _, c := range cases {
		if got := c.f.Label(); got != c.want {
			t.Errorf("Label(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
}

func TestViolationString(t *testing.T) {
	cases := []struct {
		v    Violation
		want string
	}{
		{
			Violation{Kind: ProvisionalAfterFinal, First: resp(200, 200, 250, 0), Second: resp(180, 100, 300, 1)},
			"180 left 50 ns after 200 (final)",
		},
		{
			Violation{Kind: ResponseReorder, First: resp(183, 100, 400, 0), Second: resp(180, 200, 300, 1)},
			"183 entered 100 ns before 180 but left 100 ns after it",
		},
		{
			Violation{Kind: RequestReorder, First: req("ACK", 1, 1000, 5000, 0), Second: req("INVITE", 2, 1500, 3000, 1)},
			"ACK entered 500 ns before INVITE but left 2000 ns after it",
		},
	}
	for _, c := range cases {
		if got := c.v.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
	}
	// What the checks return reads the same way.
	vs := Responses([]Forward{resp(180, 100, 300, 0), resp(200, 200, 250, 1)})
	if len(vs) != 1 || vs[0].String() != "180 left 50 ns after 200 (final)" {
		t.Fatalf("Responses → %v", vs)
	}
}

// TestMixedClocksNotCompared: a kernel-stamped forward is wider than its
// user-space times. Compared with a forward that only has user times, the
// mix would invent a reorder; the pair is compared on user times instead.
func TestMixedClocksNotCompared(t *testing.T) {
	// ACK: kernel in 100, out 400 (user 150..350); re-INVITE user-only
	// in 200 out 380. Kernel-vs-user says the ACK left after the
	// re-INVITE; on user times the ACK (150..350) is first both ways.
	ack := Forward{In: 100, Out: 400, Kernel: true, UserIn: 150, UserOut: 350, Method: "ACK"}
	re := Forward{In: 200, Out: 380, UserIn: 200, UserOut: 380, Method: "INVITE"}
	if v, ok := RequestPair(ack, re); ok {
		t.Fatalf("mixed clocks reported %v", v)
	}
	// Both kernel: compared on kernel times.
	re.Kernel, re.In, re.Out = true, 120, 390
	if _, ok := RequestPair(ack, re); !ok {
		t.Fatal("kernel reorder not reported")
	}
}
