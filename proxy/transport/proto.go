package transport

import (
	"fmt"
	"strings"
)

// Proto is a SIP transport protocol. The zero value is invalid so that a
// forgotten field in an Outbound is an error rather than a silent UDP send.
type Proto uint8

// Supported transports.
const (
	UDP Proto = iota + 1
	TCP
)

// String returns the name as it appears in a Via header ("UDP", "TCP").
func (p Proto) String() string {
	switch p {
	case UDP:
		return "UDP"
	case TCP:
		return "TCP"
	default:
		return fmt.Sprintf("Proto(%d)", uint8(p))
	}
}

// ParseProto parses a transport name case-insensitively ("udp", "TCP", ...).
func ParseProto(s string) (Proto, error) {
	switch {
	case strings.EqualFold(s, "udp"):
		return UDP, nil
	case strings.EqualFold(s, "tcp"):
		return TCP, nil
	default:
		return 0, fmt.Errorf("parse proto %q: unsupported transport (want udp or tcp)", s)
	}
}
