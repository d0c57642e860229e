package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/difybot/difybot/bot"
)

// The files of an answer go into the run's thread with Slack's upload flow: files.getUploadURLExternal, the
// bytes POSTed to the URL it gives, then one files.completeUploadExternal that shares them all, so Slack shows
// them as one message under the text (images inline). Each file's progress is stored in the run's state, so a
// Reply repeated after a crash sends only what Slack has not shared yet:
//
//	slack_file:<id> = "up:F123"    uploaded (or being completed): files.info tells whether the share happened
//	slack_file:<id> = "done:F123"  shared in the thread
const stateFilePrefix = "slack_file:"

// RequiredScopes are the bot token scopes difybot needs; doctor names the ones auth.test does not list.
var RequiredScopes = []string{"app_mentions:read", "channels:history", "groups:history", "im:history", "im:read", "chat:write",
	"files:read", "files:write"}

// stateFilesNote is set once the thread was told that the files cannot be uploaded (the token lacks files:write).
const stateFilesNote = "slack_files_note"

// sendFiles shares the reply's files in m's thread, once each. A token without files:write cannot upload: the
// thread is told once instead, and the answer counts as delivered (retrying cannot help).
func (a *Adapter) sendFiles(ctx context.Context, m bot.Message, r bot.Reply) error {
	err := a.shareFiles(ctx, m, r)
	if code := slackCode(err); code != "missing_scope" && code != "not_allowed_token_type" {
		return err
	}
	a.log.Warn().Str("run_id", r.RunID).Err(err).Msg("the bot token cannot upload files (files:write); the thread is told")
	var names []string
	for _, f := range r.Files {
		names = append(names, f.Name)
	}
	return a.put(ctx, m, r.State, stateFilesNote, fmt.Sprintf(a.text.noFileScope, strings.Join(names, ", ")), nil)
}

func (a *Adapter) shareFiles(ctx context.Context, m bot.Message, r bot.Reply) error {
	var pending []slack.FileSummary
	for _, f := range r.Files {
		key := stateFilePrefix + f.ID
		stage, fid, _ := strings.Cut(r.State.Get(key), ":")
		switch stage {
		case "done":
			continue
		case "up":
			shared, known, err := a.shared(ctx, fid, m.ChatID)
			switch {
			case err != nil:
				return err
			case shared:
				if err := r.State.Set(ctx, key, "done:"+fid); err != nil {
					return fmt.Errorf("slack files: %w", err)
				}
				continue
			case known:
				pending = append(pending, slack.FileSummary{ID: fid, Title: f.Name})
				continue
			}
			// Slack no longer has the upload (it was never completed and expired): upload it again.
		}
		fid, err := a.upload(ctx, f)
		if err != nil {
			return fmt.Errorf("slack files: %s: %w", f.Name, err)
		}
		if err := r.State.Set(ctx, key, "up:"+fid); err != nil {
			return fmt.Errorf("slack files: %w", err)
		}
		pending = append(pending, slack.FileSummary{ID: fid, Title: f.Name})
	}
	if len(pending) == 0 {
		return nil
	}
	_, err := a.api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: pending,
		Channel: m.ChatID, ThreadTimestamp: m.ThreadID})
	if err != nil {
		return fmt.Errorf("slack files: files.completeUploadExternal: %w", err)
	}
	for _, f := range r.Files {
		key := stateFilePrefix + f.ID
		if stage, fid, _ := strings.Cut(r.State.Get(key), ":"); stage == "up" {
			if err := r.State.Set(ctx, key, "done:"+fid); err != nil {
				return fmt.Errorf("slack files: %w", err)
			}
		}
	}
	return nil
}

// upload sends one file's bytes to the URL Slack gives for it and returns Slack's file id.
func (a *Adapter) upload(ctx context.Context, f bot.ReplyFile) (string, error) {
	u, err := a.api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: f.Name, FileSize: int(f.Size)})
	if err != nil {
		return "", fmt.Errorf("files.getUploadURLExternal: %w", err)
	}
	body, err := f.Open(ctx)
	if err != nil {
		return "", err
	}
	defer body.Close()
	if err := a.api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: u.UploadURL, Reader: body, Filename: f.Name}); err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	return u.FileID, nil
}

// shared asks files.info whether an uploaded file is shared in channel already (the completion went through
// before a crash), and whether Slack still knows the file at all.
func (a *Adapter) shared(ctx context.Context, fileID, channel string) (shared, known bool, err error) {
	f, _, _, err := a.api.GetFileInfoContext(ctx, fileID, 0, 0)
	if slackCode(err) == "file_not_found" {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("slack files: files.info: %w", err)
	}
	if slices.Contains(f.Channels, channel) || slices.Contains(f.Groups, channel) || slices.Contains(f.IMs, channel) ||
		len(f.Shares.Public[channel]) > 0 || len(f.Shares.Private[channel]) > 0 {
		return true, true, nil
	}
	return false, true, nil
}

// scopes asks auth.test which scopes the bot token has: Slack lists them in its X-OAuth-Scopes header, which
// slack-go does not expose. It returns nil when the header is absent.
func (a *Adapter) scopes(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.APIURL+"auth.test", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.BotToken)
	res, err := a.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("auth.test: %w", err)
	}
	defer res.Body.Close()
	var out struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("auth.test: %w", err)
	}
	if !out.OK {
		return nil, fmt.Errorf("auth.test: %s", out.Error)
	}
	h := res.Header.Get("X-OAuth-Scopes")
	if h == "" {
		return nil, nil
	}
	var scopes []string
	for _, s := range strings.Split(h, ",") {
		scopes = append(scopes, strings.TrimSpace(s))
	}
	return scopes, nil
}

// scopeCheck is doctor's line about the token's scopes: the ones difybot needs that it lacks, and what each is
// for.
func (a *Adapter) scopeCheck(have []string) (bot.Check, bool) {
	if have == nil {
		return bot.Check{}, false // auth.test's own check reports a failure; no header, nothing to say.
	}
	var missing []string
	for _, s := range RequiredScopes {
		if !slices.Contains(have, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return bot.Check{Name: "Slack scopes", OK: true, Detail: strings.Join(RequiredScopes, ", ")}, true
	}
	fixes := []string{"add " + strings.Join(missing, ", ") + " under OAuth & Permissions → Bot Token Scopes (or in the app manifest), then reinstall the app to the workspace"}
	if slices.Contains(missing, "files:write") {
		fixes = append(fixes, "without files:write the images and files the workflow returns cannot be uploaded to the thread")
	}
	return bot.Check{Name: "Slack scopes", Detail: "the bot token lacks " + strings.Join(missing, ", "), Fixes: fixes}, true
}
