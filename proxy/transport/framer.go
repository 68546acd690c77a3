package transport

import (
	"errors"
	"fmt"
	"io"

	"github.com/emiago/sipgo/sip"
)

// frame is one complete message cut from a TCP stream.
type frame struct {
	msg  sip.Message
	size int    // wire bytes
	raw  []byte // the message's wire bytes; valid only during emit
}

// frameError carries the HandleBad reason for a stream that cannot go on.
type frameError struct {
	reason string
	err    error
}

func (e *frameError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *frameError) Unwrap() error { return e.err }

// framer cuts a TCP byte stream into SIP messages with sipgo's stream
// parser (Content-Length framing) and handles RFC 5626 keepalives, which
// the parser would otherwise swallow: it skips CRLFs before a start line
// without telling anyone, so we strip them ourselves at message boundaries
// to answer a double-CRLF ping with a single-CRLF pong.
type framer struct {
	stream *sip.ParserStream
	// between is true when no message is in progress: bytes seen next are
	// keepalive CRLFs or the start of a new message.
	between bool
	crlfs   int // complete CRLFs seen since the last message or pong
}

func (f *framer) init(maxSize int) {
	p := NewParser()
	p.MaxMessageLength = maxSize
	f.stream = p.NewSIPStream()
	f.between = true
	f.crlfs = 0
}

func (f *framer) close() { f.stream.Close() }

// midMessage reports whether a partial message is buffered.
func (f *framer) midMessage() bool {
	if !f.between {
		return true
	}
	b := f.stream.Buffer().Bytes()
	return !onlyCRLF(b)
}

// feed appends data and emits every complete message and pong, in stream
// order. A non-nil error is a *frameError: the stream cannot be resynchronised.
func (f *framer) feed(data []byte, pong func(), emit func(frame)) error {
	if _, err := f.stream.Write(data); err != nil {
		return &frameError{ReasonFraming, err}
	}
	for {
		if f.between && !f.skipKeepalive(pong) {
			return nil // only (part of) a keepalive buffered; wait for more
		}
		pending := f.stream.Buffer().Bytes()
		msg, n, err := f.parseNext()
		switch {
		case err == nil:
			f.between = true
			fr := frame{msg: msg, size: n}
			if n <= len(pending) {
				fr.raw = pending[:n]
			}
			emit(fr)
			if f.stream.Buffer().Len() == 0 {
				return nil
			}
		case errors.Is(err, io.ErrUnexpectedEOF):
			f.between = false
			return nil
		case errors.Is(err, sip.ErrMessageTooLarge):
			return &frameError{ReasonTooLarge, err}
		case errors.Is(err, sip.ErrParseReadBodyIncomplete):
			return &frameError{ReasonFraming, fmt.Errorf("no Content-Length: %w", err)}
		case errors.Is(err, sip.ErrParseLineNoCRLF):
			return &frameError{ReasonFraming, err}
		default:
			return &frameError{ReasonParse, err}
		}
	}
}

// parseNext wraps ParseNext so a parser panic on hostile bytes closes one
// connection instead of the process.
func (f *framer) parseNext() (msg sip.Message, n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, n, err = nil, 0, fmt.Errorf("parser panic: %v", r)
		}
	}()
	return f.stream.ParseNext()
}

// skipKeepalive consumes leading CRLFs at a message boundary, calling pong
// for each double CRLF (RFC 5626 §3.5.1 ping). A lone CRLF is ignored. It
// returns false when nothing but keepalive bytes (possibly a trailing CR)
// is buffered.
func (f *framer) skipKeepalive(pong func()) bool {
	b := f.stream.Buffer().Bytes()
	i := 0
	for len(b)-i >= 2 && b[i] == '\r' && b[i+1] == '\n' {
		i += 2
		f.crlfs++
		if f.crlfs == 2 {
			pong()
			f.crlfs = 0
		}
	}
	rest := len(b) - i
	partialCR := rest == 1 && b[i] == '\r'
	if i > 0 {
		f.stream.Discard(i) // at a boundary the parser holds no state to lose
	}
	if rest == 0 || partialCR {
		return false
	}
	f.crlfs = 0 // a message starts: a preceding lone CRLF was just padding
	return true
}
