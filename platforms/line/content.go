package line

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"syscall"
	"time"

	"github.com/difybot/difybot/bot"
)

// messageIDRE is what a LINE message id looks like (digits today); anything else would change the request path.
var messageIDRE = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)

// OpenFile streams an image of m: from LINE's content API for images sent through LINE, or from the sender's
// URL for external ones. The caller caps and closes the stream. Failures are classified as
// platform_download_failed.
func (a *Adapter) OpenFile(ctx context.Context, m bot.Message, f bot.File) (io.ReadCloser, error) {
	switch {
	case f.ID != "":
		return a.content(ctx, f.ID)
	case f.URL != "":
		return a.fetchExternal(ctx, f.URL)
	}
	return nil, bot.Classified(bot.CodePlatformDownloadFailed, "line content", errors.New("the file has neither a message id nor a URL"))
}

// content streams GET {DataAPIURL}/v2/bot/message/{id}/content.
func (a *Adapter) content(ctx context.Context, id string) (io.ReadCloser, error) {
	if !messageIDRE.MatchString(id) {
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "line content", fmt.Errorf("%q is not a LINE message id", id))
	}
	c, err := a.blob(ctx)
	if err != nil {
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "line content", err)
	}
	res, _, err := c.GetMessageContentWithHttpInfo(id)
	if err == nil && res != nil && res.StatusCode == http.StatusOK {
		return res.Body, nil
	}
	if res == nil || (err != nil && res.StatusCode/100 == 3) {
		// No answer, or a redirect the client refused (to http, say): the error says why, not the 3xx.
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "line content", fmt.Errorf("LINE content of message %s: %w", id, err))
	}
	e := readAPIError("content", res)
	switch e.Status {
	case http.StatusNotFound, http.StatusGone:
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "line content", fmt.Errorf(
			"LINE no longer has the content of message %s (%w): LINE keeps what people send only for a limited time, so a run that waited long finds it gone; ask the person to send it again", id, e))

	case http.StatusUnauthorized:
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "line content", fmt.Errorf(
			"LINE refused the channel access token (%w): check LINE_CHANNEL_TOKEN", e))

	case http.StatusAccepted:
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "line content", fmt.Errorf(
			"LINE is still preparing the content of message %s (%w)", id, e))

	}
	return nil, bot.Classified(bot.CodePlatformDownloadFailed, "line content", e)
}

// fetchExternal streams an image a LIFF app sent by URL. The URL comes from whoever sent the message, so it is
// fetched without our token and only from public addresses (no loopback, private or link-local hosts, where
// cloud metadata and internal services live).
func (a *Adapter) fetchExternal(ctx context.Context, raw string) (io.ReadCloser, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "external image", errors.New("the image URL is not an http(s) URL"))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "external image", err)
	}
	req.Header.Set("Accept", "image/*")
	res, err := a.external.Do(req)
	if err != nil {
		// The URL itself may carry a signature; the error names the host only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "external image", fmt.Errorf("GET %s: %w", u.Host, err))
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "external image", fmt.Errorf("GET %s: HTTP %d", u.Host, res.StatusCode))
	}
	return res.Body, nil
}

// externalClient fetches external images: a few redirects at most, http(s) only, and every connection checked
// by publicOnly after DNS resolution, so a name that resolves to an internal address is refused too.
func (a *Adapter) externalClient() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: a.publicOnly}
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

// nonPublic are ranges that are not on the public internet but that netip's predicates do not cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // Carrier-grade NAT.
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach any IPv4 address, internal ones too.
}

func (a *Adapter) publicOnly(_, address string, _ syscall.RawConn) error {
	if a.allowPrivate {
		return nil
	}
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
		return fmt.Errorf("%s is not a public address; external images are fetched only from the internet", ip)
	}
	return nil
}
