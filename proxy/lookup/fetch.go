package lookup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"sipvigil/proxy/config"
)

// answer is the endpoint's JSON body. Unknown members are ignored so a
// service can add fields without breaking older proxies.
type answer struct {
	Hops  []string `json:"hops"`
	Reply *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"reply"`
}

// do performs one HTTP lookup on a pool goroutine. runCtx is Run's
// context: when it is cancelled the request is abandoned.
func (c *Client) do(runCtx context.Context, req Request) Result {
	u := c.tmpl.expand(req)
	ctx, cancel := context.WithTimeout(runCtx, c.timeout)
	defer cancel()

	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		// Not expected: New validated the template and every value is
		// query-escaped. Kept as an error, never a panic, on the call path.
		return c.failed(OutcomeError, fmt.Errorf("lookup %s: GET %s: %w", c.name, u, err))
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", "sipvigil-lookup")

	resp, err := c.http.Do(hreq)
	if err != nil {
		return c.transportFailure(runCtx, ctx, u, err)
	}
	body, err := readBody(resp)
	if err != nil {
		if ctx.Err() != nil {
			return c.transportFailure(runCtx, ctx, u, err)
		}
		return c.failed(OutcomeError, fmt.Errorf("lookup %s: GET %s: %w", c.name, u, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.failed(OutcomeError, fmt.Errorf("lookup %s: GET %s: status %s%s", c.name, u, resp.Status, snippet(body)))
	}
	res, err := decode(body)
	if err != nil {
		return c.failed(OutcomeError, fmt.Errorf("lookup %s: GET %s: %w", c.name, u, err))
	}
	return res
}

// transportFailure classifies a failed request or body read: a shutdown
// is an error (the lookup never got a fair chance, but it did not time
// out either), the lookup's own deadline is a timeout, anything else is an
// error.
func (c *Client) transportFailure(runCtx, reqCtx context.Context, u string, err error) Result {
	// url.Error repeats the method and URL we are about to add.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if runCtx.Err() != nil {
		return c.failed(OutcomeError, fmt.Errorf("lookup %s: GET %s: cancelled by shutdown: %w", c.name, u, err))
	}
	var ne net.Error
	if errors.Is(reqCtx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return c.failed(OutcomeTimeout, fmt.Errorf("lookup %s: GET %s: no answer within %v: %w", c.name, u, c.timeout, err))
	}
	return c.failed(OutcomeError, fmt.Errorf("lookup %s: GET %s: %w", c.name, u, err))
}

// readBody reads at most MaxBodySize bytes and closes the body. A body that
// is read to EOF lets net/http reuse the connection; an oversized one is
// abandoned and its connection closed, which is the right price for a
// misbehaving endpoint.
func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodySize+1))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if len(body) > MaxBodySize {
		return nil, fmt.Errorf("status %s: body larger than %d bytes", resp.Status, MaxBodySize)
	}
	return body, nil
}

// snippet quotes the start of an error body for the log, where services
// usually explain themselves.
func snippet(body []byte) string {
	const max = 128
	if len(body) == 0 {
		return ""
	}
	if len(body) > max {
		return ": " + strconv.Quote(string(body[:max])) + "..."
	}
	return ": " + strconv.Quote(string(body))
}

// decode turns a 2xx body into a Result; see the endpoint contract in the
// package doc.
func decode(body []byte) (Result, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return Result{}, fmt.Errorf("invalid JSON body%s: %w", snippet(body), err)
	}
	switch {
	case a.Hops != nil && a.Reply != nil:
		return Result{}, errors.New(`body has both "hops" and "reply"; send one`)
	case a.Reply != nil:
		r := Reply{Code: a.Reply.Code, Reason: a.Reply.Reason}
		if r.Code < 300 || r.Code > 699 {
			return Result{}, fmt.Errorf("reply code %d is not between 300 and 699", r.Code)
		}
		if r.Reason == "" {
			r.Reason = reasonPhrase(r.Code)
		}
		if err := checkReason(r.Reason); err != nil {
			return Result{}, fmt.Errorf("reply: %w", err)
		}
		return Result{Reply: &r, Outcome: OutcomeReply}, nil
	case a.Hops != nil:
		if len(a.Hops) == 0 {
			return Result{}, errors.New(`"hops" is empty`)
		}
		hops := make([]config.Hop, len(a.Hops))
		for i, s := range a.Hops {
			h, err := config.ParseHopLiteral(s)
			if err != nil {
				// Some parse errors quote the hop already.
				if strings.Contains(err.Error(), strconv.Quote(s)) {
					return Result{}, fmt.Errorf("hop %d: %w", i+1, err)
				}
				return Result{}, fmt.Errorf("hop %d %q: %w", i+1, s, err)
			}
			hops[i] = h
		}
		return Result{Hops: hops, Outcome: OutcomeOK}, nil
	default:
		return Result{}, fmt.Errorf(`body has neither "hops" nor "reply"%s`, snippet(body))
	}
}

// reasonPhrase is the RFC 3261 §21 (and common extension) phrase for a
// final response code, used when the endpoint or the config gives a code
// without a reason.
func reasonPhrase(code int) string {
	switch code {
	case 300:
		return "Multiple Choices"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Moved Temporarily"
	case 305:
		return "Use Proxy"
	case 380:
		return "Alternative Service"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 402:
		return "Payment Required"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 406:
		return "Not Acceptable"
	case 407:
		return "Proxy Authentication Required"
	case 408:
		return "Request Timeout"
	case 410:
		return "Gone"
	case 413:
		return "Request Entity Too Large"
	case 414:
		return "Request-URI Too Long"
	case 415:
		return "Unsupported Media Type"
	case 416:
		return "Unsupported URI Scheme"
	case 420:
		return "Bad Extension"
	case 421:
		return "Extension Required"
	case 423:
		return "Interval Too Brief"
	case 429:
		return "Provide Referrer Identity"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 482:
		return "Loop Detected"
	case 483:
		return "Too Many Hops"
	case 484:
		return "Address Incomplete"
	case 485:
		return "Ambiguous"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 491:
		return "Request Pending"
	case 493:
		return "Undecipherable"
	case 500:
		return "Server Internal Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Server Time-out"
	case 505:
		return "Version Not Supported"
	case 513:
		return "Message Too Large"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	case 604:
		return "Does Not Exist Anywhere"
	case 606:
		return "Not Acceptable"
	case 607:
		return "Unwanted"
	}
	switch code / 100 {
	case 3:
		return "Redirection"
	case 4:
		return "Client Error"
	case 5:
		return "Server Error"
	default:
		return "Global Failure"
	}
}
