// Package redirect keeps credentials on the origin they were meant for when an HTTP client follows redirects.
//
// Go's default policy drops Authorization only when a redirect leaves the host name (and its subdomains): a
// redirect from https://files.slack.com to http://files.slack.com:8080 keeps the bearer token, sending it in the
// clear to whatever listens on that port. Guard re-checks the scheme, host and port of every hop.
package redirect

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// MaxHops is how many redirects a guarded client follows, as Go's default policy.
const MaxHops = 10

// credentials are the request headers that carry a secret for the origin they were set for.
var credentials = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// ErrDowngrade is returned for a redirect from https to plain http: the request (and the answer) would travel in
// the clear, and the answer could be anyone's.
var ErrDowngrade = errors.New("refusing a redirect from https to http")

// Guard returns a copy of c (the same Transport, Jar and Timeout; nil is a client with Go's defaults) that on
// every redirect refuses a downgrade from https to http and sends the credentials of the first request only
// to its own origin: same scheme, host and port. A hop that left the origin sends none for the rest of the
// chain. c's own CheckRedirect, if any, runs after.
func Guard(c *http.Client) *http.Client {
	var g http.Client
	if c != nil {
		g = *c
	}
	next := g.CheckRedirect
	g.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= MaxHops {
			return fmt.Errorf("stopped after %d redirects", MaxHops)
		}
		if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("%w (to %s)", ErrDowngrade, origin(req.URL.Scheme, req.URL.Host))
		}
		first := via[0].URL
		same := SameOrigin(first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
		for _, hop := range via[1:] {
			same = same && SameOrigin(first.Scheme, first.Host, hop.URL.Scheme, hop.URL.Host)
		}
		if !same {
			for _, h := range credentials {
				req.Header.Del(h)
			}
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &g
}

// SameOrigin reports whether two scheme and host[:port] pairs are one origin; a missing port is the scheme's
// default, and names compare without case.
func SameOrigin(scheme1, host1, scheme2, host2 string) bool {
	return origin(scheme1, host1) == origin(scheme2, host2)
}

// origin is scheme://host:port, lower-cased, with the scheme's default port made explicit.
func origin(scheme, host string) string {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	if !hasPort(host) {
		switch scheme {
		case "https":
			host += ":443"
		case "http":
			host += ":80"
		}
	}
	return scheme + "://" + host
}

// hasPort reports a host with an explicit port: "a:8080", "[::1]:8080", but not "[::1]".
func hasPort(host string) bool {
	i := strings.LastIndexByte(host, ':')
	return i >= 0 && i > strings.LastIndexByte(host, ']')
}
