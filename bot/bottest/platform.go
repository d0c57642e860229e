package bottest

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/difybot/difybot/bot"
)

// Platform is a bot.Platform and bot.ProgressReporter in memory: it serves files from a map, or from an opener
// (AddFileFunc), and a file it does not have answers "410 gone", unclassified, as a platform's plain error; it
// records what the pipeline tells the person. It is safe for concurrent use.
type Platform struct {
	name string

	mu       sync.Mutex
	files    map[string][]byte
	opens    map[string]func(ctx context.Context) (io.ReadCloser, error)
	replies  []bot.Reply
	progress []bot.Progress
	replyErr error
}

// NewPlatform returns a platform of that name ("fake" when empty), as Message.Platform names it.
func NewPlatform(name string) *Platform {
	if name == "" {
		name = "fake"
	}
	return &Platform{name: name, files: map[string][]byte{}, opens: map[string]func(context.Context) (io.ReadCloser, error){}}
}

// Name is the platform's name.
func (p *Platform) Name() string { return p.name }

// Direct reports a chat whose id starts with D as one-to-one with the bot, as Slack's DMs (bot.DirectChats).
func (p *Platform) Direct(m bot.Message) bool { return strings.HasPrefix(m.ChatID, "D") }

// AddFile makes OpenFile serve b for the file id.
func (p *Platform) AddFile(id string, b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files[id] = b
}

// AddFileFunc makes OpenFile answer with open for the file id: a stream that stalls, drips or fails.
func (p *Platform) AddFileFunc(id string, open func(ctx context.Context) (io.ReadCloser, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opens[id] = open
}

// RemoveFile makes the file id gone.
func (p *Platform) RemoveFile(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.files, id)
	delete(p.opens, id)
}

// FailReplies makes Reply return err without recording the reply; nil makes it work again.
func (p *Platform) FailReplies(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replyErr = err
}

// OpenFile serves the file f.ID.
func (p *Platform) OpenFile(ctx context.Context, _ bot.Message, f bot.File) (io.ReadCloser, error) {
	p.mu.Lock()
	open := p.opens[f.ID]
	b, ok := p.files[f.ID]
	p.mu.Unlock()
	if open != nil {
		return open(ctx)
	}
	if !ok {
		return nil, errors.New("410 gone")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Reply records r, or fails as FailReplies says.
func (p *Platform) Reply(_ context.Context, _ bot.Message, r bot.Reply) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.replyErr != nil {
		return p.replyErr
	}
	p.replies = append(p.replies, r)
	return nil
}

// Progress records pr.
func (p *Platform) Progress(_ context.Context, _ bot.Message, pr bot.Progress) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.progress = append(p.progress, pr)
	return nil
}

// Replies returns every reply recorded, interim notices included.
func (p *Platform) Replies() []bot.Reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.replies)
}

// Finals returns the final replies recorded.
func (p *Platform) Finals() []bot.Reply {
	return slices.DeleteFunc(p.Replies(), func(r bot.Reply) bool { return !r.Final })
}

// Reported returns the progress recorded.
func (p *Platform) Reported() []bot.Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.progress)
}

// Reset forgets the replies and progress recorded.
func (p *Platform) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replies, p.progress = nil, nil
}

// PNG is a real w×h PNG, for a platform to serve.
func PNG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(1, 1, color.RGBA{R: 200, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
