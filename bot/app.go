package bot

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/difybot/difybot/dify"
)

// appTTL is how long what we learned about the Dify app is trusted; an edited start form shows up this late.
const appTTL = 5 * time.Minute

// app is what the pipeline needs to know about the Dify app: its mode and where inputs go.
type app struct {
	chat       bool   // chat, agent-chat or advanced-chat: use /chat-messages.
	imageVar   string // Start variable for images; "" means sys.files.
	imageList  bool   // imageVar is a file-list.
	textVar    string // Start variable for the text (workflow apps).
	imageLimit int64  // Dify's image upload limit in bytes; 0 when it does not say.
}

// appCache discovers the app once per appTTL. Its zero value is ready to use.
type appCache struct {
	mu  sync.Mutex
	got *app
	at  time.Time
}

func (c *appCache) get(ctx context.Context, b *Bot) (*app, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got != nil && b.now().Sub(c.at) < appTTL {
		return c.got, nil
	}
	a, err := b.discover(ctx)
	if err != nil {
		return nil, err
	}
	c.got, c.at = a, b.now()
	return a, nil
}

// discover applies DIFY_APP_MODE, DIFY_IMAGE_INPUT and DIFY_TEXT_INPUT, asking Dify where they say auto.
func (b *Bot) discover(ctx context.Context) (*app, error) {
	a := &app{chat: b.cfg.AppMode == "chat"}
	if b.cfg.AppMode == "" || b.cfg.AppMode == "auto" {
		info, err := b.cfg.Workflows.Info(ctx)
		if err != nil {
			return nil, err
		}
		switch info.Mode {
		case "chat", "agent-chat", "advanced-chat":
			a.chat = true
		}
	}
	params, err := b.cfg.Workflows.Parameters(ctx)
	var ae *dify.APIError
	switch {
	case errors.As(err, &ae) && ae.Code == "app_unavailable":
		// Dify answers this for a workflow that was never published as well as for a broken app; the run itself
		// says which ("Workflow not published"), so carry on with the defaults and let it.
		params = &dify.Parameters{}
	case err != nil:
		return nil, err
	}
	a.imageLimit = params.SystemParameters.ImageLimitBytes()
	a.imageVar, a.textVar = b.cfg.ImageInput, b.cfg.TextInput
	if a.imageVar == "" || a.imageVar == "auto" {
		a.imageVar = ""
		for _, f := range params.UserInputForm {
			if f.AcceptsImages() {
				a.imageVar = f.Variable
				break
			}
		}
	}
	if a.imageVar == "files" {
		a.imageVar = ""
	}
	for _, f := range params.UserInputForm {
		if f.Variable == a.imageVar {
			a.imageList = f.Type == "file-list"
		}
	}
	if a.textVar == "" || a.textVar == "auto" {
		a.textVar = "query"
		for _, f := range params.UserInputForm {
			if f.Type == "text-input" || f.Type == "paragraph" {
				a.textVar = f.Variable
				break
			}
		}
	}
	return a, nil
}

// inputs builds a run's inputs and sys.files for a workflow app.
func (a *app) inputs(text string, files []dify.FileRef) (map[string]any, []dify.FileRef) {
	in := map[string]any{}
	if text != "" && !a.chat {
		in[a.textVar] = text
	}
	if len(files) == 0 {
		return in, nil
	}
	switch {
	case a.imageVar == "":
		return in, files
	case a.imageList:
		in[a.imageVar] = files
	default:
		in[a.imageVar] = files[0]
	}
	return in, nil
}
