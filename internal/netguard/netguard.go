// Package netguard fetches URLs that someone else chose (an image a LIFF app sent, a file a workflow's tool
// returned) only from the public internet: not from loopback, private or link-local hosts, where cloud metadata
// and internal services live. The check is made on every connection after DNS, so a name that resolves to an
// internal address, or a redirect to one, is refused too.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// nonPublic are ranges that are not on the public internet but that netip's predicates do not cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // Carrier-grade NAT.
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach any IPv4 address, internal ones too.
}

// Check returns an error unless address (ip:port, as a dialer has it after DNS) is on the public internet.
func Check(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	ip := ap.Addr().Unmap()
	public := ip.IsGlobalUnicast() && !ip.IsPrivate()
	for _, p := range nonPublic {
		public = public && !p.Contains(ip)
	}
	if !public {
		return fmt.Errorf("%s is not a public address", ip)
	}
	return nil
}

// Control is a net.Dialer Control that refuses every address Check refuses.
func Control(_, address string, _ syscall.RawConn) error { return Check(address) }

// Client returns an HTTP client for such URLs: http(s) only, at most 3 redirects, and every connection passed
// through control (Control, or a test's that lets local servers through).
func Client(control func(network, address string, c syscall.RawConn) error) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: control}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return errors.New("redirect to a non-http(s) URL")
			}
			return nil
		},
	}
}
