package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/difybot/difybot/dify"
)

// difyAnswer is what a run or chat message answered: a workflow's outputs, or a chat app's answer, and the
// files either carries.
type difyAnswer struct {
	outputs     map[string]any  // nil for a chat answer.
	outputsJSON json.RawMessage // The outputs as sent, keeping their keys' order.
	answer      string
	replaced    string // A workflow's text_replace: it replaces the text shown.
	files       []dify.OutputFile
}

func runAnswer(run *dify.Run) difyAnswer {
	if answer, ok := run.Outputs["answer"].(string); ok && len(run.Outputs) == 1 {
		return difyAnswer{answer: answer, files: run.Files}
	}
	return difyAnswer{outputs: run.Outputs, outputsJSON: run.OutputsJSON, replaced: run.Replaced, files: run.Files}
}

// runDify runs the workflow or chat app (step 6), or waits for the run a crashed attempt started.
func (b *Bot) runDify(ctx context.Context, r *Run, p Platform, text string, refs []dify.FileRef, fields map[string]any) (difyAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	wf := b.appFor(r).Workflows
	if r.DifyRunID != "" {
		fields["dify_run_id"], fields["resumed"] = r.DifyRunID, true
		run, err := wf.WaitRun(ctx, r.DifyRunID)
		if err != nil {
			return difyAnswer{}, err
		}
		return runAnswer(run), nil
	}
	if r.DifyMessageID != "" && r.ConversationID != "" {
		// A chat app's message a crashed attempt sent: its answer is read from the conversation.
		fields["dify_message_id"], fields["resumed"] = r.DifyMessageID, true
		reply, err := wf.WaitMessage(ctx, r.ConversationID, r.DifyMessageID, difyUser(r.Message))
		if err != nil {
			return difyAnswer{}, err
		}
		if err := b.keepConversation(ctx, r, "", reply, fields); err != nil {
			return difyAnswer{}, err
		}
		return difyAnswer{answer: reply.Answer, files: reply.Files}, nil
	}
	if r.PostedAttempt == r.Attempt {
		// We may have started a run whose id never reached us; posting again could run it twice.
		return difyAnswer{}, Classified(CodeInternal, "run", errors.New("an earlier attempt was interrupted after sending the run to Dify and before Dify confirmed it; it is not sent again so it cannot run twice"))
	}
	a, err := b.runApp(ctx, r)
	if err != nil {
		return difyAnswer{}, err
	}
	if f := a.Missing; f != nil {
		return difyAnswer{}, Classified(CodeDifyInputInvalid, "inputs", fmt.Errorf("the workflow's start form requires %q (%s) and difybot has no value for it: set it in DIFY_INPUTS, give it a default in the Start node, or make it optional", f.Variable, f.Type))
	}
	tries := b.posted(ctx, r)
	onEvent := b.onEvent(ctx, r, p)
	user := difyUser(r.Message)
	fields["app"] = a.Summary()
	if r.App != "" {
		fields["app_name"] = r.App
	}
	if a.Chat {
		key := b.key(r)
		conv, err := b.cfg.Store.Conversation(ctx, key)
		if err != nil {
			return difyAnswer{}, fmt.Errorf("load conversation: %w", err)
		}
		query := text
		if strings.TrimSpace(query) == "" {
			query = "(image)"
		}
		send := func(conv string) (*dify.ChatReply, error) {
			inputs, _ := a.inputs("", nil)
			return wf.SendChatMessage(ctx, dify.ChatRequest{Query: query, Inputs: inputs, User: user, ConversationID: conv,
				Files: refs, Mode: b.cfg.ResponseMode, OnEvent: onEvent, Tries: tries})
		}
		reply, err := send(conv)
		if conv != "" && errors.Is(err, dify.ErrConversationGone) {
			// Dify no longer has the conversation (deleted, or ended); nothing ran, so start a new one, once.
			fields["conversation_restarted"] = true
			reply, err = send("")
		}
		if err != nil {
			return difyAnswer{}, err
		}
		if reply.Recovered {
			fields["recovered"] = true
		}
		if err := b.keepConversation(ctx, r, conv, reply, fields); err != nil {
			return difyAnswer{}, err
		}
		return difyAnswer{answer: reply.Answer, files: reply.Files}, nil
	}
	inputs, files := a.inputs(text, refs)
	run, err := wf.RunWorkflow(ctx, dify.RunRequest{Inputs: inputs, User: user, Files: files, Mode: b.cfg.ResponseMode, OnEvent: onEvent, Tries: tries})
	if run != nil {
		fields["dify_run_id"] = run.ID
		if run.Recovered {
			fields["recovered"] = true
		}
	}
	if err != nil {
		return difyAnswer{}, err
	}
	return runAnswer(run), nil
}

// keepConversation remembers the conversation a chat reply belongs to, so the person's next message goes on in it.
func (b *Bot) keepConversation(ctx context.Context, r *Run, known string, reply *dify.ChatReply, fields map[string]any) error {
	fields["conversation_id"] = reply.ConversationID
	if reply.ConversationID == "" || reply.ConversationID == known {
		return nil
	}
	r.ConversationID = reply.ConversationID
	if err := b.cfg.Store.SetConversation(ctx, b.key(r), reply.ConversationID); err != nil {
		return fmt.Errorf("save conversation: %w", err)
	}
	return nil
}

// posted keeps the run's "posted" mark (PostedAttempt) set exactly while a try of its POST may have reached
// Dify: stored before each try is sent, cleared after each try that certainly started nothing (a gateway's
// 502 page, a refused connection, a rate limit). A process killed while the client waits to send again leaves
// it clear, and the next attempt posts the run; one killed while a try was in flight leaves it set, and the
// run is never posted again. Clearing is stored even when ctx has ended (a shutdown): it is the truth.
func (b *Bot) posted(ctx context.Context, r *Run) dify.Tries {
	before := r.PostedAttempt
	return dify.Tries{
		OnSend: func() error {
			r.PostedAttempt = r.Attempt
			if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
				return fmt.Errorf("save run: %w", err)
			}
			return nil
		},
		OnNotStarted: func(error) {
			r.PostedAttempt = before
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := b.cfg.Store.SaveRun(sctx, *r); err != nil {
				// The stored mark stays set: after a crash now, the run is not posted again (the safe side).
				b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not clear the posted mark of a run that did not start")
			}
		},
	}
}

// heartbeatEvery is how often a long node's progress is shown again, riding on Dify's 10 s pings, so that
// indicators that lapse (LINE's loading animation lasts 60 s) stay on.
const heartbeatEvery = 30 * time.Second

// onEvent records the run's ids as soon as Dify names them (so a crash can resume), stores node events (the
// store writes them with others, bot/store's holdLogs), and shows progress, and the answer as Dify writes it,
// where the platform can.
func (b *Bot) onEvent(ctx context.Context, r *Run, p Platform) func(dify.Event) {
	pr, _ := p.(ProgressReporter)
	var feed *streamFeed
	if st, ok := p.(Streamer); ok {
		feed = &streamFeed{now: b.now, send: func(s Stream) {
			b.awaitFeedback(ctx, r, false) // The stream to append to, if the fast lane started it.
			s.RunID, s.Attempt, s.State = r.ID, r.Attempt, b.state(r)
			if err := st.Stream(ctx, r.Message, s); err != nil {
				b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not stream the answer")
			}
		}}
	}
	seq, done := 0, 0
	var node string
	var shown time.Time
	progress := func() {
		if pr == nil {
			return
		}
		b.awaitFeedback(ctx, r, false) // The placeholder to edit, if the fast lane posted it.
		shown = b.now()
		if err := pr.Progress(ctx, r.Message, Progress{RunID: r.ID, Attempt: r.Attempt, State: b.state(r), Step: StepRun, Node: node, Done: done}); err != nil {
			b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not show progress")
		}
	}
	return func(ev dify.Event) {
		if feed != nil {
			defer feed.observe(ev) // After the run's ids are stored.
		}
		switch ev.Event {
		case "ping":
			if b.now().Sub(shown) >= heartbeatEvery {
				progress()
			}
		case "workflow_started":
			r.DifyRunID, r.DifyTaskID = ev.WorkflowRunID, ev.TaskID
			if r.DifyRunID == "" {
				r.DifyRunID = ev.Data.ID
			}
			if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
				b.log.Error().Err(err).Str("run_id", r.ID).Msg("could not store the Dify run id")
			}
		case "message", "agent_message", "agent_thought":
			// A plain chat app runs no workflow: its message id is what a crash resumes by. A chatflow has
			// named its run already (workflow_started comes first), which is the better handle.
			if r.DifyMessageID == "" && r.DifyRunID == "" && ev.MessageID != "" && ev.ConversationID != "" {
				r.DifyMessageID, r.ConversationID, r.DifyTaskID = ev.MessageID, ev.ConversationID, ev.TaskID
				if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
					b.log.Error().Err(err).Str("run_id", r.ID).Msg("could not store the Dify message id")
				}
			}
		case "node_started", "node_finished":
			seq++
			if ev.Event == "node_finished" {
				done++
			}
			e := NodeEvent{RunID: r.ID, Seq: seq, Event: ev.Event, NodeID: ev.Data.NodeID, NodeType: ev.Data.NodeType,
				Title: ev.Data.Title, Index: int(ev.Data.Index), Status: ev.Data.Status, Elapsed: ev.Data.ElapsedTime,
				Error: ev.Data.Error, At: b.now()}
			if err := b.cfg.Store.AddNodeEvents(context.WithoutCancel(ctx), e); err != nil {
				b.log.Error().Err(err).Str("run_id", r.ID).Msg("could not store node events")
			}
			if ev.Event == "node_started" {
				node = ev.Data.Title
				progress()
			}
		}
	}
}

// difyUser is the end-user id Dify sees: stable per person and platform, and not personal data beyond the id.
func difyUser(m Message) string { return m.Platform + "-" + m.UserID }

// outputPreference is DIFY_OUTPUT_KEY=auto's order.
var outputPreference = []string{"text", "answer", "result", "output"}

func outputKeys(m map[string]any) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return strings.Join(keys, ", ")
}
