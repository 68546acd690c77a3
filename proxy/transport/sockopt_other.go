//go:build !linux

package transport

import (
	"errors"
	"syscall"
)

// sipvigil targets Linux; this file only keeps the package compiling on
// developer machines. Truncation is still caught by the MaxDatagram+1 buffer.
const msgTrunc = 0

func reusePortControl(_, _ string, _ syscall.RawConn) error {
	return errors.New("SO_REUSEPORT sockets are only supported on Linux")
}

type bufferOpts struct{ sysctl string }

func recvBufferOpts() bufferOpts { return bufferOpts{"net.core.rmem_max"} }

func sendBufferOpts() bufferOpts { return bufferOpts{"net.core.wmem_max"} }

// setBuffer cannot read the grant back portably; report the request.
func setBuffer(_ syscall.RawConn, _ bufferOpts, want int) (int, error) {
	return want, nil
}
