package bot_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/dify"
	"github.com/rs/zerolog"
)

// instantDify answers at once from memory, so a benchmark measures the bot and not Dify.
type instantDify struct{ breaker *dify.Breaker }

func (instantDify) Info(context.Context) (*dify.Info, error) {
	return &dify.Info{Mode: "workflow"}, nil
}

func (instantDify) Parameters(context.Context) (*dify.Parameters, error) {
	return &dify.Parameters{UserInputForm: []dify.InputField{{Type: "paragraph", Variable: "query"}, {Type: "file", Variable: "photo", AllowedFileTypes: []string{"image"}}}}, nil
}

func (instantDify) UploadFile(_ context.Context, u dify.Upload) (*dify.File, error) {
	n, err := io.Copy(io.Discard, u.Body)
	return &dify.File{ID: "file-1", Size: n}, err
}

func (instantDify) RunWorkflow(_ context.Context, req dify.RunRequest) (*dify.Run, error) {
	if req.OnSend != nil { // The posted mark is one of the store writes.
		if err := req.OnSend(); err != nil {
			return nil, err
		}
	}
	for _, ev := range []string{"workflow_started", "node_started", "node_finished", "node_started", "node_finished", "workflow_finished"} {
		if req.OnEvent != nil {
			req.OnEvent(dify.Event{Event: ev, WorkflowRunID: "run-1", TaskID: "task-1", Data: dify.EventData{Title: "Node", Status: "succeeded"}})
		}
	}
	return &dify.Run{ID: "run-1", Status: "succeeded", Outputs: map[string]any{"text": "A cat on a sofa."}}, nil
}

func (instantDify) SendChatMessage(context.Context, dify.ChatRequest) (*dify.ChatReply, error) {
	return &dify.ChatReply{Answer: "hi"}, nil
}

func (instantDify) WaitRun(context.Context, string) (*dify.Run, error) { return nil, nil }
func (instantDify) GetForm(context.Context, string) (*dify.Form, error) {
	return nil, errors.New("no forms")
}

func (instantDify) SubmitForm(context.Context, string, dify.Submission) error {
	return errors.New("no forms")
}

func (instantDify) FollowRun(context.Context, dify.FollowRequest) (*dify.Run, error) {
	return nil, errors.New("no forms")
}

func (instantDify) WaitMessage(context.Context, string, string, string) (*dify.ChatReply, error) {
	return nil, nil
}

func (instantDify) OpenFile(context.Context, dify.OutputFile) (io.ReadCloser, string, error) {
	return nil, "", errors.New("no files here")
}

func (d instantDify) Ready() error { return d.breaker.Ready() }

// BenchmarkPipeline measures the bot's own work per message — accept, the store writes, every step record and
// log line, spooling and sniffing the image — with Dify and the platform answering instantly.
func BenchmarkPipeline(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(b.TempDir(), "bench.db"), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	plat := bottest.NewPlatform("fake")
	plat.AddFile("F", bottest.PNG(b, 640, 480))
	bt, err := bot.New(bot.Config{Store: st, Workflows: instantDify{dify.NewBreaker(dify.BreakerConfig{}, zerolog.Nop())},
		Platforms: []bot.Platform{plat}, Logger: zerolog.New(io.Discard), TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	inbox, err := bot.NewInbox(bot.InboxConfig{Store: st, Logger: zerolog.New(io.Discard)})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files []bot.File
	}{{"text", nil}, {"image", []bot.File{{ID: "F", Name: "a.png"}}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				m := bot.Message{Platform: "fake", EventID: fmt.Sprintf("%s-%d", tc.name, i), ChatID: "C", UserID: "U", Text: "what is this?", Files: tc.files}
				r, _, err := inbox.Accept(ctx, m)
				if err != nil {
					b.Fatal(err)
				}
				if err := bt.Process(ctx, r.ID); err != nil {
					b.Fatal(err)
				}
			}
			plat.Reset()
		})
	}
}
