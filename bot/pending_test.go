package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
)

// formOf makes the simulated app's start form require what a test needs: the text, the photo, or both.
type formOf struct {
	*dify.Client
	textRequired, photoRequired bool
	textDefault                 string
	suggested                   []string
}

func (f formOf) Parameters(ctx context.Context) (*dify.Parameters, error) {
	p, err := f.Client.Parameters(ctx)
	if err != nil {
		return nil, err
	}
	for i := range p.UserInputForm {
		switch p.UserInputForm[i].Variable {
		case "query":
			p.UserInputForm[i].Required = f.textRequired
		case "photo":
			p.UserInputForm[i].Required = f.photoRequired
		}
	}
	return p, nil
}

// withForm is a harness whose app requires the given inputs; clock lets a test move time on.
func withForm(t *testing.T, f formOf, clock *time.Time, edit ...func(*bot.Config)) *harness {
	return newHarness(t, "ok", func(c *bot.Config) {
		f.Client = c.Workflows.(*dify.Client)
		c.Workflows = f
		if clock != nil {
			c.Now = func() time.Time { return *clock }
		}
		for _, e := range edit {
			e(c)
		}
	})
}

func photo(t testing.TB, h *harness, event, file string) bot.Message {
	m := h.withImage(file, bottest.PNG(t, 32, 24))
	m.EventID, m.Text = event, ""
	return m
}

func TestPhotoAloneWaitsForItsQuestion(t *testing.T) {
	h := withForm(t, formOf{textRequired: true}, nil)
	ctx := context.Background()

	first, err := h.send(t, photo(t, h, "ev-photo", "F1"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Reply != "Got your photo. What would you like to know? Send your question." || h.sim.Calls(difytest.RouteRun) != 0 {
		t.Fatalf("photo alone: reply %q, %d runs", first.Reply, h.sim.Calls(difytest.RouteRun))
	}
	steps, _ := h.store.Steps(ctx, first.ID)
	if got := stepNames(steps); got != "1/4 receive done, 2/4 enqueue done, 3/4 pending waiting, 4/4 reply done" {
		t.Errorf("waiting steps: %s", got)
	}

	// A second photo joins the request before the question comes.
	second, _ := h.send(t, photo(t, h, "ev-photo2", "F2"))
	if !strings.Contains(second.Reply, "Got your 2 photos") {
		t.Errorf("second photo: %q", second.Reply)
	}

	text, err := h.send(t, bot.Message{EventID: "ev-text", Text: "what brand is it?"})
	if err != nil {
		t.Fatal(err)
	}
	// The simulated workflow takes one file, so the first photo runs now and the second is queued after it.
	if text.Status != bot.RunSucceeded || !strings.HasPrefix(text.Reply, "Photo 1 of 2\n") || !strings.Contains(text.Reply, "32×24") ||
		!strings.Contains(text.Reply, "You said: what brand is it?") || text.Batch == nil || len(text.Batch.Rest.Files) != 1 {
		t.Fatalf("completing text: %s %q", text.Status, text.Reply)
	}
	if n := h.sim.Calls(difytest.RouteRun); n != 1 {
		t.Errorf("%d workflow runs, want 1", n)
	}
	if n := h.sim.Calls(difytest.RouteUpload); n != 1 {
		t.Errorf("%d uploads, want the first photo", n)
	}
	steps, _ = h.store.Steps(ctx, text.ID)
	if got := stepNames(steps); !strings.HasPrefix(got, "1/8 receive done, 2/8 enqueue done, 3/8 fetch done") {
		t.Errorf("completing run steps: %s", got)
	}

	// Processing the completing run again (a crash before the queue knew) runs nothing twice, and a later text
	// finds nothing waiting.
	if err := h.bot.Process(ctx, text.ID); err != nil {
		t.Fatal(err)
	}
	later, _ := h.send(t, bot.Message{EventID: "ev-later", Text: "and the price?"})
	if !strings.Contains(later.Reply, "No image was attached") || h.sim.Calls(difytest.RouteRun) != 2 {
		t.Errorf("later text: %q, %d runs", later.Reply, h.sim.Calls(difytest.RouteRun))
	}
}

func TestTextAloneWaitsForAPhoto(t *testing.T) {
	h := withForm(t, formOf{photoRequired: true}, nil, func(c *bot.Config) { c.Language = "ja" })
	first, err := h.send(t, bot.Message{EventID: "ev-text", Text: "is this damaged?"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first.Reply, "写真を送ってください") || h.sim.Calls(difytest.RouteRun) != 0 {
		t.Fatalf("text alone: %q, %d runs", first.Reply, h.sim.Calls(difytest.RouteRun))
	}
	run, err := h.send(t, photo(t, h, "ev-photo", "F1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(run.Reply, "32×24") || !strings.Contains(run.Reply, "You said: is this damaged?") || h.sim.Calls(difytest.RouteRun) != 1 {
		t.Errorf("completing photo: %q, %d runs", run.Reply, h.sim.Calls(difytest.RouteRun))
	}
}

func TestPhotoAloneRunsAtOnce(t *testing.T) {
	tests := []struct {
		name string
		form formOf
		cfg  func(*bot.Config)
		want string
	}{
		{"IMAGE_PROMPT", formOf{textRequired: true}, func(c *bot.Config) { c.ImagePrompt = "Describe the damage." }, "You said: Describe the damage."},
		{"optional text", formOf{}, nil, "32×24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var edit []func(*bot.Config)
			if tt.cfg != nil {
				edit = append(edit, tt.cfg)
			}
			h := withForm(t, tt.form, nil, edit...)
			r, err := h.send(t, photo(t, h, "ev-photo", "F1"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(r.Reply, tt.want) || h.sim.Calls(difytest.RouteRun) != 1 {
				t.Errorf("reply %q, %d runs", r.Reply, h.sim.Calls(difytest.RouteRun))
			}
		})
	}
}

func TestPendingExpires(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	h := withForm(t, formOf{textRequired: true}, &now, func(c *bot.Config) { c.PendingTTL = time.Minute })
	ctx := context.Background()
	first, _ := h.send(t, photo(t, h, "ev-photo", "F1"))
	now = now.Add(2 * time.Minute)
	if err := h.bot.ExpirePending(ctx); err != nil {
		t.Fatal(err)
	}
	steps, _ := h.store.Steps(ctx, first.ID)
	if last := steps[len(steps)-1]; last.Name != bot.StepPending || last.Status != "expired" {
		t.Errorf("expired photo's last step: %s", stepNames(steps))
	}
	replies := len(h.plat.Finals())
	text, _ := h.send(t, bot.Message{EventID: "ev-text", Text: "what is it?"})
	if !strings.Contains(text.Reply, "No image was attached") || len(h.plat.Finals()) != replies+1 {
		t.Errorf("text after expiry: %q", text.Reply)
	}
}

// The answer that asks a waiting photo for its question says so (Reply.KeepFiles), so that an adapter keeps the
// photo for the run that completes the request; that run's answer does not.
func TestWaitingAnswerKeepsThePhoto(t *testing.T) {
	h := withForm(t, formOf{textRequired: true}, nil)
	if _, err := h.send(t, photo(t, h, "ev-photo", "F1")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.send(t, bot.Message{EventID: "ev-text", Text: "what brand is it?"}); err != nil {
		t.Fatal(err)
	}
	finals := h.plat.Finals()
	if len(finals) != 2 || !finals[0].KeepFiles || finals[1].KeepFiles {
		t.Fatalf("final replies = %+v, want the waiting one and then the answer", finals)
	}
}

// ForgetApp makes the next message read the start form again: the demo switches its simulated app's shape and
// the very next photo is asked for its question.
func TestForgetAppReadsTheFormAgain(t *testing.T) {
	h := newHarness(t, "ok")
	ctx := context.Background()
	if a, err := h.bot.App(ctx); err != nil || a.TextRequired {
		t.Fatalf("default shape: %+v %v", a, err)
	}
	if err := h.sim.SetShape("required_text"); err != nil {
		t.Fatal(err)
	}
	if a, _ := h.bot.App(ctx); a.TextRequired {
		t.Fatal("the cached form changed without ForgetApp")
	}
	h.bot.ForgetApp()
	if a, err := h.bot.App(ctx); err != nil || !a.TextRequired || len(a.Suggested) == 0 {
		t.Fatalf("after ForgetApp: %+v %v", a, err)
	}
}
