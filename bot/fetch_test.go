package bot_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
)

// dripBody sends data a chunk at a time, every gap, then stalls until its context ends (when stall is set)
// or ends the stream. Reads end with the context's error once it is done, as an HTTP body's do.
type dripBody struct {
	ctx   context.Context
	data  []byte
	chunk int
	gap   time.Duration
	stall bool
}

func (b *dripBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 && !b.stall {
		return 0, io.EOF
	}
	wait := b.gap
	if len(b.data) == 0 {
		wait = time.Hour
	}
	select {
	case <-b.ctx.Done():
		return 0, b.ctx.Err()
	case <-time.After(wait):
	}
	n := copy(p[:min(len(p), b.chunk)], b.data)
	b.data = b.data[n:]
	return n, nil
}

func (b *dripBody) Close() error { return nil }

// TestStalledDownloadIsAnswered gives a download its own limits: a platform that stops sending, never
// answers, or drips too slowly ends in platform_download_failed with a message that says which, and the
// person is told, long before any job timeout.
func TestStalledDownloadIsAnswered(t *testing.T) {
	t.Parallel()
	png := bottest.PNG(t, 64, 48)
	tests := []struct {
		name string
		open func(ctx context.Context) (io.ReadCloser, error)
		want string
	}{
		{"stalls after the first bytes", func(ctx context.Context) (io.ReadCloser, error) {
			return &dripBody{ctx: ctx, data: png[:100], chunk: 100, gap: time.Millisecond, stall: true}, nil
		}, "photo.png: fake sent no data for 300ms (after 100 bytes)"},
		{"never answers", func(ctx context.Context) (io.ReadCloser, error) {
			<-ctx.Done()
			return nil, bot.Classified(bot.CodePlatformDownloadFailed, "fake download", ctx.Err())
		}, "photo.png: fake sent no data for 300ms"},
		{"drips too slowly", func(ctx context.Context) (io.ReadCloser, error) {
			return &dripBody{ctx: ctx, data: make([]byte, 1<<20), chunk: 10, gap: 20 * time.Millisecond}, nil
		}, "photo.png: the download took longer than 1 s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, "ok", func(c *bot.Config) { c.FetchTimeout, c.FetchIdle = time.Second, 300*time.Millisecond })
			m := h.withImage("F1", nil)
			h.plat.AddFileFunc("F1", tt.open)
			start := time.Now()
			r, err := h.send(t, m)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("Process: %v (a stalled download is an answer, not a queue error)", err)
			}
			if r.Status != bot.RunFailed || r.Code != bot.CodePlatformDownloadFailed || r.Diagnosis == nil {
				t.Fatalf("status %s code %s, want failed platform_download_failed", r.Status, r.Code)
			}
			if !strings.Contains(r.Diagnosis.Detail, tt.want) {
				t.Errorf("detail %q, want it to say %q", r.Diagnosis.Detail, tt.want)
			}
			if took > 3*time.Second {
				t.Errorf("the run took %s, want about the fetch limit", took)
			}
			if finals := h.plat.Finals(); len(finals) != 1 || !strings.Contains(finals[0].Text, "could not download your file") {
				t.Errorf("the person got %+v", finals)
			}
			t.Logf("answered in %s: %s", took.Round(time.Millisecond), r.Diagnosis.Detail)
		})
	}
}

// TestSlowDownloadWithinLimitsSucceeds: bytes that keep coming reset the idle limit.
func TestSlowDownloadWithinLimitsSucceeds(t *testing.T) {
	t.Parallel()
	png := bottest.PNG(t, 64, 48)
	h := newHarness(t, "ok", func(c *bot.Config) { c.FetchTimeout, c.FetchIdle = 5*time.Second, 200*time.Millisecond })
	m := h.withImage("F1", nil)
	h.plat.AddFileFunc("F1", func(ctx context.Context) (io.ReadCloser, error) {
		// Each gap is under the idle limit; together they are well over it.
		return &dripBody{ctx: ctx, data: png, chunk: len(png)/8 + 1, gap: 100 * time.Millisecond}, nil
	})
	r, err := h.send(t, m)
	if err != nil || r.Status != bot.RunSucceeded {
		t.Fatalf("Process: %v; status %s code %s", err, r.Status, r.Code)
	}
}
