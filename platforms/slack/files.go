package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/internal/redirect"
)

// scopeHint ends every download error: the usual cause is an app installed without files:read.
const scopeHint = "check that the app has the files:read bot scope (reinstall it after adding the scope) and that the bot can see the file"

// OpenFile streams a file of m with the bot token. A partial file object (no download URL) is looked up with
// files.info first. The stream fails if it carries more bytes than Slack said the file has. Errors are
// classified as bot.CodePlatformDownloadFailed.
//
// It does its own GET rather than slack.Client.GetFileContext so that an unreadable file fails here, before
// any byte is read, and the caller's Close ends the download at once. It keeps the SDK's guard: the token goes
// only to https Slack hosts or to the configured API URL's host.
func (a *Adapter) OpenFile(ctx context.Context, m bot.Message, f bot.File) (io.ReadCloser, error) {
	link, size := f.URL, f.Size
	if link == "" {
		info, _, _, err := a.api.GetFileInfoContext(ctx, f.ID, 0, 0)
		if err != nil {
			return nil, downloadError(fmt.Errorf("files.info for %s: %s", f.ID, describeAPIError(err)))
		}
		link = info.URLPrivateDownload
		if size <= 0 {
			size = int64(info.Size)
		}
		if link == "" {
			return nil, downloadError(fmt.Errorf("slack gave no download URL for file %s (an external, hidden or deleted file)", f.ID))
		}
	}
	if err := a.mayReceiveToken(link); err != nil {
		return nil, downloadError(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return nil, downloadError(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.BotToken)
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, downloadError(fmt.Errorf("file %s: %w", f.ID, redactURLError(err)))
	}
	if err := checkDownload(resp, req, f); err != nil {
		resp.Body.Close()
		return nil, downloadError(fmt.Errorf("file %s: %w", f.ID, err))
	}
	if size > 0 {
		return &cappedBody{rc: resp.Body, left: size}, nil
	}
	return resp.Body, nil
}

func downloadError(err error) error {
	return bot.Classified(bot.CodePlatformDownloadFailed, "slack download", fmt.Errorf("%w; %s", err, scopeHint))
}

// checkDownload recognises Slack's ways of refusing a file: an error status, or a redirect to the sign-in page.
func checkDownload(resp *http.Response, req *http.Request, f bot.File) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("slack answered %s to the download", resp.Status)
	}
	// Without access, files.slack.com redirects to the workspace sign-in page with redir set to the file path.
	if final := resp.Request; final != nil && final.URL.Query().Get("redir") != "" && final.URL.Query().Get("redir") == req.URL.Path {
		return errors.New("slack sent its sign-in page instead of the file: the token cannot read it")
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct == "text/html" && !strings.HasPrefix(f.MIMEType, "text/html") {
		return errors.New("slack sent an HTML page instead of the file: the token cannot read it")
	}
	return nil
}

// describeAPIError spells out Slack's scope errors, which say which scope is missing.
func describeAPIError(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		s := "slack answered " + se.Err
		if se.Needed != "" {
			s += " (needed: " + se.Needed + ")"
		}
		return s
	}
	return err.Error()
}

// slackDomains are the hosts, with their subdomains, that may receive the bot token over https (as in slack-go).
var slackDomains = []string{"slack.com", "slack-gov.com"}

// mayReceiveToken refuses to send the token anywhere but Slack (https, on its own port) or the API URL's origin
// (in tests, the fake's): an external file's URL is whatever its creator chose. Redirects are checked again by
// the client (redirect.Guard).
func (a *Adapter) mayReceiveToken(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad file URL: %w", err)
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme == "https" && (u.Port() == "" || u.Port() == "443") &&
		slices.ContainsFunc(slackDomains, func(d string) bool { return host == d || strings.HasSuffix(host, "."+d) }) {
		return nil
	}
	if redirect.SameOrigin(u.Scheme, u.Host, a.apiURL.Scheme, a.apiURL.Host) {
		return nil
	}
	return fmt.Errorf("refusing to send the bot token to %s: not an https Slack URL", u.Redacted())
}

// redactURLError keeps the file URL out of logs and diagnoses: it is a capability to the person's file.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// errFileTooLarge is returned when a download goes past the size Slack announced.
var errFileTooLarge = errors.New("slack sent more bytes than the file's size")

// cappedBody ends a download that goes past the announced size, so a wrong or hostile size cannot fill the disk.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.rc.Read(p)
	if int64(n) > c.left {
		n = int(c.left)
		c.left = 0
		return n, downloadError(errFileTooLarge)
	}
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.rc.Close() }
