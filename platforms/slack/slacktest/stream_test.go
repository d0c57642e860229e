package slacktest_test

import (
	"context"
	"testing"

	"github.com/slack-go/slack"

	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// The streaming and assistant methods answer slack-go as Slack does.
func TestStreamingSpeaksToSlackGo(t *testing.T) {
	s := slacktest.Start(t, slacktest.Options{})
	ctx := context.Background()
	api := slack.New(slacktest.BotToken, slack.OptionAPIURL(s.URL()))
	code := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}

	if _, _, err := api.StartStreamContext(ctx, "D1"); code(err) != "invalid_arguments" {
		t.Errorf("a stream outside a thread: %v, want invalid_arguments", err)
	}
	if _, _, err := api.StartStreamContext(ctx, "C1", slack.MsgOptionTS("1.1")); code(err) != "missing_recipient_team_id" {
		t.Errorf("a channel stream without its recipient: %v, want missing_recipient_team_id", err)
	}
	_, ts, err := api.StartStreamContext(ctx, "C1", slack.MsgOptionTS("1.1"), slack.MsgOptionRecipientTeamID(slacktest.TeamID),
		slack.MsgOptionRecipientUserID("U1"), slack.MsgOptionTaskDisplayMode(slack.TaskDisplayModeTimeline))
	if err != nil || ts == "" {
		t.Fatalf("chat.startStream: %q, %v", ts, err)
	}
	task := slack.NewTaskUpdateChunk("llm", "LLM")
	task.Status = slack.TaskCardStatusInProgress
	if _, _, err := api.AppendStreamContext(ctx, "C1", ts, slack.MsgOptionChunks(task, slack.NewMarkdownTextChunk("Hello"))); err != nil {
		t.Fatalf("chat.appendStream: %v", err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("x", false)); code(err) != "cant_update_message" {
		t.Errorf("chat.update of a live stream: %v, want cant_update_message", err)
	}
	task.Status = slack.TaskCardStatusComplete
	if _, _, err := api.StopStreamContext(ctx, "C1", ts, slack.MsgOptionChunks(task, slack.NewMarkdownTextChunk(", world"))); err != nil {
		t.Fatalf("chat.stopStream: %v", err)
	}
	m := s.Messages()
	if len(m) != 1 || m[0].Text != "Hello, world" || m[0].Streaming || !m[0].Streamed || len(m[0].Tasks) != 1 || m[0].Tasks[0].Status != "complete" {
		t.Errorf("messages = %+v, want the stopped stream with its text and task", m)
	}
	if _, _, err := api.AppendStreamContext(ctx, "C1", ts, slack.MsgOptionMarkdownText("late")); code(err) != "message_not_in_streaming_state" {
		t.Errorf("append after the stop: %v, want message_not_in_streaming_state", err)
	}

	_, ts2, _ := api.StartStreamContext(ctx, "D1", slack.MsgOptionTS("2.1"))
	s.ExpireStreams()
	if _, _, err := api.StopStreamContext(ctx, "D1", ts2); code(err) != "message_not_in_streaming_state" {
		t.Errorf("stop of an expired stream: %v, want message_not_in_streaming_state", err)
	}
	s.FailWith("chat.startStream", slacktest.Refuse("channel_type_not_supported"))
	if _, _, err := api.StartStreamContext(ctx, "D1", slack.MsgOptionTS("3.1")); code(err) != "channel_type_not_supported" {
		t.Errorf("a refused stream: %v", err)
	}

	p := slack.AssistantThreadsSetSuggestedPromptsParameters{ChannelID: "D1", ThreadTS: "2.1"}
	p.AddPrompt("What is this?", "What is this?")
	if err := api.SetAssistantThreadsSuggestedPromptsContext(ctx, p); err != nil {
		t.Errorf("setSuggestedPrompts: %v", err)
	}
	for i := range 4 {
		p.AddPrompt("q", string(rune('a'+i)))
	}
	if err := api.SetAssistantThreadsSuggestedPromptsContext(ctx, p); code(err) != "invalid_arguments" {
		t.Errorf("five prompts: %v, want invalid_arguments", err)
	}
	if err := api.SetAssistantThreadsStatusContext(ctx, slack.AssistantThreadsSetStatusParameters{ChannelID: "D1", ThreadTS: "2.1",
		Status: "is thinking…", LoadingMessages: []string{"LLM"}}); err != nil {
		t.Errorf("setStatus: %v", err)
	}
	if err := api.SetAssistantThreadsTitleContext(ctx, slack.AssistantThreadsSetTitleParameters{ChannelID: "D1", Title: "t"}); code(err) != "invalid_arguments" {
		t.Errorf("setTitle without the thread: %v, want invalid_arguments", err)
	}
	if st := s.CallsTo("assistant.threads.setStatus")[0].Form; st.Get("loading_messages") != "LLM" || st.Get("status") != "is thinking…" {
		t.Errorf("setStatus form = %v", st)
	}
}
