package txn

import (
	"errors"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func requestWithVia(t *testing.T, method, via string) *sip.Request {
	t.Helper()
	return parseRequest(t, method+` sip:bob@biloxi.example.com SIP/2.0
Via: `+via+`
Max-Forwards: 70
From: <sip:alice@atlanta.example.com>;tag=1
To: <sip:bob@biloxi.example.com>
Call-ID: k@atlanta.example.com
CSeq: 1 `+method+`
Content-Length: 0

`)
}

func TestServerKey(t *testing.T) {
	const via = "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds"
	base, err := ServerKey(requestWithVia(t, "INVITE", via))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		method  string
		via     string
		same    bool
		wantErr error
	}{
		{"retransmission", "INVITE", via, true, nil},
		{"ACK maps to INVITE", "ACK", via, true, nil},
		{"host is case-insensitive", "INVITE", "SIP/2.0/UDP PC33.Atlanta.Example.COM:5060;branch=z9hG4bK776asdhds", true, nil},
		{"default UDP port", "INVITE", "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds", true, nil},
		{"param name case-insensitive", "INVITE", "SIP/2.0/UDP pc33.atlanta.example.com:5060;Branch=z9hG4bK776asdhds", true, nil},
		{"CANCEL keeps its method", "CANCEL", via, false, nil},
		{"other method", "BYE", via, false, nil},
		{"other branch", "INVITE", "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhdX", false, nil},
		{"other sent-by port", "INVITE", "SIP/2.0/UDP pc33.atlanta.example.com:5070;branch=z9hG4bK776asdhds", false, nil},
		{"default TLS port differs", "INVITE", "SIP/2.0/TLS pc33.atlanta.example.com;branch=z9hG4bK776asdhds", false, nil},
		{"RFC 2543 branch", "INVITE", "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=776asdhds", false, ErrNoBranch},
		{"bare magic cookie", "INVITE", "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK", false, ErrNoBranch},
		{"no branch", "INVITE", "SIP/2.0/UDP pc33.atlanta.example.com:5060", false, ErrNoBranch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ServerKey(requestWithVia(t, tt.method, tt.via))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (key == base) != tt.same {
				t.Errorf("key %q vs base %q: same=%v, want %v", key, base, key == base, tt.same)
			}
		})
	}
}

func TestServerKeyErrors(t *testing.T) {
	if _, err := ServerKey(nil); !errors.Is(err, ErrNilMessage) {
		t.Errorf("nil: %v", err)
	}
	noVia := sip.NewRequest(sip.INVITE, sip.Uri{Host: "example.com"})
	if _, err := ServerKey(noVia); !errors.Is(err, ErrNoVia) {
		t.Errorf("no Via: %v", err)
	}
	if _, err := CancelTargetKey(nil); !errors.Is(err, ErrNilMessage) {
		t.Errorf("CancelTargetKey(nil): %v", err)
	}
	if _, err := CancelTargetKey(noVia); !errors.Is(err, ErrNoVia) {
		t.Errorf("CancelTargetKey no Via: %v", err)
	}
	empty := &sip.Request{}
	if _, err := ServerKey(empty); err == nil {
		t.Error("zero Request keyed without error")
	}
}

func TestClientKey(t *testing.T) {
	invite := newInvite(t)
	key, err := ClientKey(invite)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{100, 180, 200, 486} {
		rk, err := ClientKey(responseTo(invite, code))
		if err != nil || rk != key {
			t.Errorf("ClientKey(%d) = %q, %v; want %q", code, rk, err, key)
		}
	}
	cancelResp := responseTo(CancelFor(invite), 200)
	if ck, err := ClientKey(cancelResp); err != nil || ck == key {
		t.Errorf("200 to CANCEL keyed %q, %v: must differ from INVITE's %q", ck, err, key)
	}

	noCSeq := sip.NewResponse(200, "OK")
	noCSeq.AppendHeader(invite.Via().Clone())
	noVia := sip.NewResponse(200, "OK")
	noVia.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	noBranch := sip.NewResponse(200, "OK")
	noBranch.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "h"})
	noBranch.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	tests := []struct {
		name string
		msg  sip.Message
		want error
	}{
		{"nil interface", nil, ErrNilMessage},
		{"nil request", (*sip.Request)(nil), ErrNilMessage},
		{"nil response", (*sip.Response)(nil), ErrNilMessage},
		{"no CSeq", noCSeq, ErrNoCSeq},
		{"no Via", noVia, ErrNoVia},
		{"no branch", noBranch, ErrNoBranch},
	}
	for _, tt := range tests {
		if _, err := ClientKey(tt.msg); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}
