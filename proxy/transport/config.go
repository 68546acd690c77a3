package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sipvigil/proxy/observe"
	"time"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultUDPSockets        = 1
	DefaultRecvBuffer        = 8 << 20
	DefaultSendBuffer        = 8 << 20
	DefaultMaxDatagram       = 65535
	DefaultTCPIdleTimeout    = 120 * time.Second
	DefaultTCPConnectTimeout = 2 * time.Second
	DefaultTCPWriteTimeout   = 10 * time.Second
	DefaultMaxMessageSize    = 65535
	DefaultTCPQueueLen       = 1024
)

// Listen is one address to listen on, with the transports wanted there.
// When both UDP and TCP are set and the port is 0, both get the same port.
type Listen struct {
	Addr     netip.AddrPort
	UDP, TCP bool
}

// Config configures a Transport. Zero values take the Default* constants.
type Config struct {
	Listen []Listen
	// UDPSockets is the number of SO_REUSEPORT sockets per UDP address, each
	// with one reader goroutine. The kernel hashes the flow 4-tuple onto a
	// socket, so one peer's datagrams stay on one reader and stay in order.
	UDPSockets int
	// RecvBuffer and SendBuffer are the SO_RCVBUF / SO_SNDBUF sizes for UDP
	// sockets. TCP sockets keep kernel autotuning (see New).
	RecvBuffer int
	SendBuffer int
	// MaxDatagram is the largest UDP datagram accepted; the read buffer is one
	// byte larger so truncation is detectable.
	MaxDatagram int
	// TCPIdleTimeout closes a connection with no reads or writes for this long.
	TCPIdleTimeout time.Duration
	// TCPConnectTimeout bounds an outbound dial.
	TCPConnectTimeout time.Duration
	// TCPWriteTimeout closes a connection whose peer does not take a write
	// for this long; without it a stalled peer would pin the writer forever.
	TCPWriteTimeout time.Duration
	// TCPQueueLen is the per-connection writer queue length in messages; a
	// full queue makes Send fail instead of blocking the worker.
	TCPQueueLen int
	// MaxMessageSize is the largest TCP message; a larger one closes the
	// connection with HandleBad("too_large").
	MaxMessageSize int
	Logger         *slog.Logger
	// Observer sees every SIP message read or written, with its
	// CLOCK_MONOTONIC time (eBPF correlation, traces). Nil means nothing
	// watches, and then no packet is built and no clock is read; it must
	// not block.
	Observer observe.Observer
	// PacketIDs numbers inbound messages and takes their CLOCK_MONOTONIC
	// receive time (Inbound.PacketID, Inbound.Mono), and with an Observer
	// gives each a kernel-stamp slot: the workers' transaction records
	// need them. Without it the transport spends nothing on either.
	PacketIDs bool
}

// withDefaults validates cfg and fills in defaults.
func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Listen) == 0 {
		return cfg, errors.New("no listen addresses")
	}
	seen := make(map[netip.AddrPort]bool, len(cfg.Listen))
	for i, l := range cfg.Listen {
		if !l.Addr.IsValid() {
			return cfg, fmt.Errorf("listen[%d]: invalid address", i)
		}
		if !l.UDP && !l.TCP {
			return cfg, fmt.Errorf("listen %s: neither UDP nor TCP enabled", l.Addr)
		}
		l.Addr = unmap(l.Addr)
		if l.Addr.Port() != 0 && seen[l.Addr] {
			return cfg, fmt.Errorf("listen %s: listed twice", l.Addr)
		}
		seen[l.Addr] = true
	}
	type field struct {
		name string
		v    *int
		def  int
	}
	for _, f := range []field{
		{"UDPSockets", &cfg.UDPSockets, DefaultUDPSockets},
		{"RecvBuffer", &cfg.RecvBuffer, DefaultRecvBuffer},
		{"SendBuffer", &cfg.SendBuffer, DefaultSendBuffer},
		{"MaxDatagram", &cfg.MaxDatagram, DefaultMaxDatagram},
		{"MaxMessageSize", &cfg.MaxMessageSize, DefaultMaxMessageSize},
		{"TCPQueueLen", &cfg.TCPQueueLen, DefaultTCPQueueLen},
	} {
		if *f.v < 0 {
			return cfg, fmt.Errorf("%s: negative value %d", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	type dur struct {
		name string
		v    *time.Duration
		def  time.Duration
	}
	for _, d := range []dur{
		{"TCPIdleTimeout", &cfg.TCPIdleTimeout, DefaultTCPIdleTimeout},
		{"TCPConnectTimeout", &cfg.TCPConnectTimeout, DefaultTCPConnectTimeout},
		{"TCPWriteTimeout", &cfg.TCPWriteTimeout, DefaultTCPWriteTimeout},
	} {
		if *d.v < 0 {
			return cfg, fmt.Errorf("%s: negative duration %s", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// unmap turns a 4-in-6 address into plain IPv4 so that one peer has one key.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// network picks the Go network name for a socket bound to a. An IPv6
// wildcard gets a dual-stack socket (IPv4 peers show up 4-in-6 and are
// unmapped); a specific IPv6 address gets an IPv6-only one.
func network(base string, a netip.Addr) string {
	switch {
	case a.Is4():
		return base + "4"
	case a.IsUnspecified():
		return base
	default:
		return base + "6"
	}
}
