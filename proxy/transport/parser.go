package transport

import "github.com/emiago/sipgo/sip"

// proxyHeaders lists the headers a proxy must understand; sipgo parses them
// into typed values up front. Every other header (Contact, Content-Type,
// Record-Route, Allow, ...) stays a verbatim string and is written back
// byte for byte. A proxy never needs to look inside them, and not parsing
// them is about a third of sipgo's parse allocations.
var proxyHeaders = []string{
	"via", "v",
	"from", "f",
	"to", "t",
	"call-id", "i",
	"cseq",
	"max-forwards",
	"content-length", "l",
	"route",
}

// NewParser returns a sipgo parser limited to the headers the proxy reads.
// The map is built per parser: sipgo's default map is a shared package
// variable and must not be modified.
func NewParser() *sip.Parser {
	all := sip.DefaultHeadersParser()
	m := make(map[string]sip.HeaderParser, len(proxyHeaders))
	for _, name := range proxyHeaders {
		if p, ok := all[name]; ok {
			m[name] = p
		}
	}
	return sip.NewParser(sip.WithHeadersParsers(m))
}
