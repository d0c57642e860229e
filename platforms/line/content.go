package line

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"syscall"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/internal/netguard"
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

// externalClient fetches external images through netguard: public addresses only, unless a test allows
// local servers.
func (a *Adapter) externalClient() *http.Client { return netguard.Client(a.publicOnly) }

func (a *Adapter) publicOnly(network, address string, c syscall.RawConn) error {
	if a.allowPrivate {
		return nil
	}
	if err := netguard.Control(network, address, c); err != nil {
		return fmt.Errorf("%w; external images are fetched only from the internet", err)
	}
	return nil
}
