package kernel

import "bytes"

// Just enough SIP to frame a TCP stream and label a message: no full parse,
// the proxy already did that and this runs on its hot path.

// skipCRLF returns the offset of the first byte of b at or after off that
// is not CR or LF (RFC 3261 §7.5 allows CRLFs before a start line; RFC 5626
// keepalives are CRLFs between messages).
func skipCRLF(b []byte, off int) int {
	for off < len(b) && (b[off] == '\r' || b[off] == '\n') {
		off++
	}
	return off
}

// startsMessage reports whether b begins with a SIP start line: "SIP/2.0 "
// (a response) or an upper-case token and a space (a request). Used only to
// decide whether a TCP segment with no tracked context is worth framing.
func startsMessage(b []byte) bool {
	if bytes.HasPrefix(b, []byte("SIP/2.0 ")) {
		return true
	}
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			if i >= 16 {
				return false
			}
		case c == ' ':
			return i > 0
		default:
			return false
		}
	}
	return false
}

// Results of frameLen besides a length.
const (
	frameUnknown = -1 // header end not in b
	frameNoCL    = -2 // headers complete but no Content-Length
)

// frameLen returns the length of the message starting at b[0] from its
// headers and Content-Length (or compact "l"), as the proxy's stream framer
// cuts it.
func frameLen(b []byte) int {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return frameUnknown
	}
	hdr := b[:end+2]
	first := bytes.IndexByte(hdr, '\n')
	for rest := hdr[first+1:]; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		name, val, ok := splitHeader(line)
		if !ok || !(equalFold(name, "content-length") || equalFold(name, "l")) {
			continue
		}
		n := 0
		for _, c := range val {
			if c < '0' || c > '9' || n > 1<<24 {
				return frameNoCL
			}
			n = n*10 + int(c-'0')
		}
		if len(val) == 0 {
			return frameNoCL
		}
		return end + 4 + n
	}
	return frameNoCL
}

// nextLine cuts one line (without CR LF) off b.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		line, rest = b, nil
	} else {
		line, rest = b[:i], b[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// splitHeader splits "Name : value" and trims blanks.
func splitHeader(line []byte) (name, val []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return nil, nil, false
	}
	return trim(line[:i]), trim(line[i+1:]), true
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with lower, an ASCII lower-case string, without
// allocating.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// fillText copies the first line, Call-ID and CSeq of data into p. It
// scans header lines only until both headers are found or the headers end.
func (p *PacketInfo) fillText(data []byte) {
	t := new(msgText)
	p.text = t
	data = data[skipCRLF(data, 0):]
	line, rest := nextLine(data)
	t.summaryLen = uint8(copy(t.summary[:], line))
	var haveCallID, haveCSeq bool
	for len(rest) > 0 && !(haveCallID && haveCSeq) {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break // end of headers
		}
		name, val, ok := splitHeader(line)
		switch {
		case !ok:
		case !haveCallID && (equalFold(name, "call-id") || equalFold(name, "i")):
			t.callIDLen = uint8(copy(t.callID[:], val))
			haveCallID = true
		case !haveCSeq && equalFold(name, "cseq"):
			t.cseqLen = uint8(copy(t.cseq[:], val))
			haveCSeq = true
		}
	}
}
