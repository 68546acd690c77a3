package e2e

import (
	"strconv"
	"testing"
	"time"
)

// TestScenariosDirect validates the scenario pairs without the proxy: the
// UAC talks straight to the UAS (the UAS is told to expect NO Record-Route).
// If a proxy test fails while this passes, the proxy is at fault, not the
// scenarios. The negative controls prove the scenarios have teeth: each
// one injects exactly the misbehaviour a proxy test looks for and must fail
// every call. Needs SIPp but not the sipvigil binary.
func TestScenariosDirect(t *testing.T) {
	cases := []struct {
		name, uac, uas string
		// failing side of a negative control: "uac" or "uas", "" = positive
		fails string
	}{
		{"basic", "uac_basic.xml", "uas_basic.xml", ""},
		{"reinvite", "uac_reinvite.xml", "uas_reinvite.xml", ""},
		{"ack-reinvite", "uac_ack_reinvite.xml", "uas_reinvite.xml", ""},
		{"cancel", "uac_cancel.xml", "uas_cancel.xml", ""},
		{"486", "uac_486.xml", "uas_486.xml", ""},
		{"neg-200-before-180", "uac_basic.xml", "neg_uas_200_before_180.xml", "uac"},
		{"neg-reinvite-before-ack", "neg_uac_reinvite_before_ack.xml", "uas_reinvite.xml", "uas"},
		{"neg-486-double-ack", "neg_uac_486_double_ack.xml", "uas_486.xml", "uas"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			needSIPp(t)
			const n = 5
			ports := freePorts(t, "127.0.0.1", 2)
			timeout := 10 * time.Second
			if c.fails != "" {
				// the peer of the failing side waits for messages that
				// never come; keep its bounded wait short.
				timeout = 5 * time.Second
			}
			uasRun := startSIPp(t, sipp{
				Name: "uas", Scenario: c.uas, Local: "127.0.0.1", Port: ports[0],
				Calls: n, Timeout: timeout, RRWant: direct,
			})
			uac := runSIPp(t, sipp{
				Name: "uac", Scenario: c.uac, Local: "127.0.0.1", Port: ports[1],
				Remote: "127.0.0.1:" + strconv.Itoa(ports[0]), Calls: n, Rate: 50, Timeout: timeout,
				// bound every recv so negative controls end quickly
				Extra: []string{"-recv_timeout", "3000"},
			})
			uas := uasRun.wait(t, timeout+2*time.Second)
			switch c.fails {
			case "":
				expectAllOK(t, uac, n)
				expectAllOK(t, uas, n)
			case "uac":
				expectFailed(t, uac, n)
			case "uas":
				expectFailed(t, uas, n)
			}
		})
	}
}
