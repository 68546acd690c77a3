//go:build linux

package transport

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// msgTrunc is the recvmsg flag saying the datagram did not fit the buffer.
const msgTrunc = unix.MSG_TRUNC

// reusePortControl is a net.ListenConfig Control func that sets SO_REUSEPORT
// before bind, so N sockets can share one address and the kernel spreads
// flows across them.
func reusePortControl(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return fmt.Errorf("raw control: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("set SO_REUSEPORT: %w", serr)
	}
	return nil
}

// bufferOpts names the socket options for one buffer direction.
type bufferOpts struct {
	opt, force int
	sysctl     string
}

// recvBufferOpts and sendBufferOpts name the options per direction.
func recvBufferOpts() bufferOpts {
	return bufferOpts{unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, "net.core.rmem_max"}
}

func sendBufferOpts() bufferOpts {
	return bufferOpts{unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, "net.core.wmem_max"}
}

// setBuffer asks for want bytes and returns what the kernel granted (the
// getsockopt value halved, comparable with want). Plain SO_RCVBUF/SO_SNDBUF
// is silently capped at the sysctl maximum, so if the grant falls short it
// retries with the *FORCE variant, which ignores the cap when the process has
// CAP_NET_ADMIN and fails with EPERM otherwise (that failure is expected and
// not an error: the caller warns about the short grant instead).
func setBuffer(c syscall.RawConn, o bufferOpts, want int) (int, error) {
	var granted int
	var serr error
	err := c.Control(func(fd uintptr) {
		s := int(fd)
		if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, o.opt, want); serr != nil {
			return
		}
		var got int
		if got, serr = unix.GetsockoptInt(s, unix.SOL_SOCKET, o.opt); serr != nil {
			return
		}
		granted = got / 2
		if granted >= want {
			return
		}
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, o.force, want) != nil {
			return
		}
		if got, serr = unix.GetsockoptInt(s, unix.SOL_SOCKET, o.opt); serr == nil {
			granted = got / 2
		}
	})
	if err != nil {
		return 0, fmt.Errorf("raw control: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("socket buffer option %d: %w", o.opt, serr)
	}
	return granted, nil
}
