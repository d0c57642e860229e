package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/difybot/difybot/dify"
)

// A Dify run that pauses at a Human Input node asks its form in the chat, one input at a time. The run that
// paused stores a Question and answers with its first prompt, then waits (RunWaiting). Each answer is the
// person's next message, a run of its own: it records its answer in the Question (of two racing answers one
// wins, so a double tap counts once) and replies with the next prompt. The message that picks the action
// submits the form and follows the Dify run to its answer, or to its next pause. A question whose form expires
// is followed by a message the bot makes for itself (ExpireQuestions).

// Who may answer a Human Input question (HUMAN_INPUT_BY).
const (
	AnswerByRequester = "requester" // The person whose message started the run.
	AnswerByAnyone    = "anyone"    // Anyone in the conversation (approval flows).
)

// StepAnswer is a message that answers a Human Input question.
const StepAnswer = "answer"

// stateQuestion is the run state key naming the question a run's message answers, so a resumed run finds it.
const stateQuestion = "question"

// place is the conversation a message belongs to, without the person.
func (m Message) place() string {
	return strings.TrimSuffix(m.ConversationKey(), "/"+m.UserID)
}

// askable returns the pause in err when the bot can ask it: a form with a token.
func askable(err error) *dify.PausedError {
	var pe *dify.PausedError
	if !errors.As(err, &pe) || !slices.ContainsFunc(pe.Forms, func(f dify.Form) bool { return f.Token != "" }) && len(pe.Forms) > 0 {
		return nil
	}
	return pe
}

// ask stores the first askable form of pe as r's question and answers r with its first prompt. earlier are the
// forms of the same Dify run answered before; requester is who may answer under HUMAN_INPUT_BY=requester.
func (b *Bot) ask(ctx context.Context, r *Run, p Platform, steps *stepLog, pe *dify.PausedError, earlier []string, requester string) error {
	if len(pe.Forms) == 0 {
		// The pause came from the run's detail (or a blocking answer), which does not carry the form: its events do.
		fctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		_, err := b.appFor(r).Workflows.FollowRun(fctx, dify.FollowRequest{RunID: pe.RunID, User: difyUser(r.Message), Answered: earlier})
		cancel()
		if pe = askable(err); pe == nil || len(pe.Forms) == 0 {
			return b.finish(ctx, r, p, steps, "", err)
		}
	}
	if pe.ConversationID != "" {
		// A chatflow's paused message started (or went on in) a conversation the next message continues.
		if err := b.cfg.Store.SetConversation(ctx, r.Message.ConversationKey(), pe.ConversationID); err != nil {
			return fmt.Errorf("bot: run %s: save conversation: %w", r.ID, err)
		}
	}
	i := slices.IndexFunc(pe.Forms, func(f dify.Form) bool { return f.Token != "" })
	f := pe.Forms[i]
	if slices.ContainsFunc(f.Inputs, func(in dify.FormInput) bool { return in.Type == "select" && len(in.Options) == 0 }) {
		// Options from a variable are resolved only when the form is read.
		if got, err := b.appFor(r).Workflows.GetForm(ctx, f.Token); err == nil {
			got.ID, got.NodeID, got.NodeTitle = f.ID, f.NodeID, f.NodeTitle
			f = *got
		}
	}
	now := b.now()
	q := Question{ID: f.ID, RunID: r.ID, DifyRunID: pe.RunID, Place: r.Message.place(), UserID: requester, Message: r.Message,
		Form: f, Status: QuestionAsking, Earlier: earlier, CreatedAt: now, UpdatedAt: now}
	if err := b.cfg.Store.AddQuestion(ctx, q); err != nil {
		return fmt.Errorf("bot: run %s: %w", r.ID, err)
	}
	var inputs []string
	for _, in := range f.Inputs {
		inputs = append(inputs, in.Name+":"+in.Type)
	}
	if !slices.Contains(steps.names, StepAnswer) {
		steps.names = slices.Insert(slices.Clone(steps.names), len(steps.names)-1, StepAnswer)
	}
	steps.record(ctx, StepAnswer, now, 0, "asking", nil, map[string]any{"form_id": f.ID, "node": f.NodeTitle,
		"inputs": strings.Join(inputs, ","), "actions": len(f.Actions), "expires_at": f.Expires})
	r.DifyRunID = pe.RunID
	text, choices := q.prompt(b.cfg.Language, true)
	return b.endWith(ctx, r, p, steps, RunWaiting, text, choices)
}

// endWith ends r's attempt with text and choices (a prompt, or nothing at all) and status.
func (b *Bot) endWith(ctx context.Context, r *Run, p Platform, steps *stepLog, status RunStatus, text string, choices []string) error {
	r.Status, r.Reply, r.Choices, r.Code, r.Diagnosis, r.FinishedAt = status, text, choices, "", nil, b.now()
	if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
		return fmt.Errorf("bot: save run %s: %w", r.ID, err)
	}
	b.cfg.Metrics.ObserveRun(*r)
	if text == "" {
		r.RepliedAttempt = r.Attempt // Nothing to say: the bot's own message for an expiry that came too late.
		return b.cfg.Store.SaveRun(ctx, *r)
	}
	return b.reply(ctx, r, p, steps)
}

// answering finds the question r's message answers, if any: the one its run took up before a restart, the one
// it follows at expiry, or the newest asking in its conversation. ok is false for an ordinary message.
func (b *Bot) answering(ctx context.Context, r *Run) (q Question, ok bool, err error) {
	id := r.Message.Question
	if id == "" {
		id = r.State[stateQuestion]
	}
	if id != "" {
		q, err = b.cfg.Store.Question(ctx, id)
		return q, err == nil, err
	}
	qs, err := b.cfg.Store.Asking(ctx, r.Message.place(), b.now().Add(-b.cfg.PendingTTL))
	if err != nil {
		return Question{}, false, err
	}
	// The newest question asking this person, else (anyone may answer, or it is someone else's) the newest.
	ask := slices.DeleteFunc(slices.Clone(qs), func(q Question) bool { return q.Status != QuestionAsking })
	if i := slices.IndexFunc(ask, func(q Question) bool { return q.UserID == r.Message.UserID }); i >= 0 && b.cfg.HumanInputBy != AnswerByAnyone {
		return ask[i], true, nil
	}
	if len(ask) > 0 {
		return ask[0], true, nil
	}
	// A second tap on the button that just closed a question is not a new request.
	text := strings.TrimSpace(r.Message.Text)
	for _, q := range qs {
		if slices.ContainsFunc(q.Form.Actions, func(a dify.FormAction) bool { return a.Title == text }) && len(r.Message.Files) == 0 {
			return q, true, nil
		}
	}
	return Question{}, false, nil
}

// answer handles a message that answers a Human Input question. handled is false for an ordinary message.
func (b *Bot) answer(ctx context.Context, r *Run, p Platform, steps *stepLog) (handled bool, err error) {
	q, ok, err := b.answering(ctx, r)
	if err != nil {
		return true, fmt.Errorf("bot: run %s: find its question: %w", r.ID, err)
	}
	if !ok {
		return false, nil
	}
	lang := b.cfg.Language
	first := r.Status == RunQueued
	mine := b.cfg.HumanInputBy == AnswerByAnyone || r.Message.UserID == q.UserID || r.Message.Question != ""
	if !mine && r.State[stateQuestion] == "" {
		// Someone else's message: a tap on the question's buttons is told politely; anything else is their own.
		if _, choices := q.prompt(lang, false); !slices.Contains(choices, strings.TrimSpace(r.Message.Text)) {
			return false, nil
		}
		steps.names = waitSteps
		if first {
			b.received(ctx, r, steps)
		}
		b.start(ctx, r, p)
		steps.record(ctx, StepAnswer, b.now(), 0, "not_theirs", nil, map[string]any{"question": q.ID})
		return true, b.endWith(ctx, r, p, steps, RunSucceeded, notYours.in(lang), nil)
	}
	if r.State[stateQuestion] == "" {
		if err := b.state(r).Set(ctx, stateQuestion, q.ID); err != nil {
			return true, fmt.Errorf("bot: run %s: %w", r.ID, err)
		}
	}
	steps.names = answerSteps(len(r.Message.Files))
	if first {
		b.received(ctx, r, steps)
	}
	if r.Message.Question == "" {
		// The first feedback (Slack's placeholder) is this run's: its reply edits it, whoever posted it.
		b.start(ctx, r, p)
	}
	switch {
	case r.Message.Question != "":
		return true, b.followExpired(ctx, r, p, steps, q)
	case q.Follower == r.ID:
		return true, b.submit(ctx, r, p, steps, q) // Resumed after a restart: submit (again, harmlessly) and follow.
	case slices.Contains(q.By, r.ID) || q.Status != QuestionAsking:
		// Resumed after this message's answer was saved, or answered by another message first (a double tap).
		if q.Status == QuestionExpired {
			return true, b.endWith(ctx, r, p, steps, RunSucceeded, formExpired.in(lang), nil)
		}
		text, choices := alreadyIn.in(lang), []string(nil)
		if q.Status == QuestionAsking && slices.Contains(q.By, r.ID) && q.By[len(q.By)-1] == r.ID {
			text, choices = q.prompt(lang, false)
		}
		return true, b.endWith(ctx, r, p, steps, RunSucceeded, text, choices)
	case q.Expired(b.now()):
		steps.record(ctx, StepAnswer, b.now(), 0, "expired", nil, map[string]any{"question": q.ID})
		return true, b.endWith(ctx, r, p, steps, RunSucceeded, formExpired.in(lang), nil)
	}

	start := b.now()
	retry, err := b.take(ctx, r, p, steps, &q)
	if err != nil {
		return true, b.finish(ctx, r, p, steps, "", err)
	}
	if retry != "" {
		text, choices := q.prompt(lang, false)
		steps.record(ctx, StepAnswer, start, b.now().Sub(start), "asked_again", nil, map[string]any{"question": q.ID, "asked": q.Asked})
		return true, b.endWith(ctx, r, p, steps, RunSucceeded, retry+" "+text, choices)
	}
	q.By, q.UpdatedAt = append(q.By, r.ID), b.now()
	if q.Action != "" {
		q.Status, q.Follower = QuestionSubmitted, r.ID
	}
	switch err := b.cfg.Store.SaveQuestion(ctx, q); {
	case errors.Is(err, ErrQuestionMoved):
		steps.record(ctx, StepAnswer, start, b.now().Sub(start), "duplicate", nil, map[string]any{"question": q.ID})
		return true, b.endWith(ctx, r, p, steps, RunSucceeded, alreadyIn.in(lang), nil)
	case err != nil:
		return true, fmt.Errorf("bot: run %s: %w", r.ID, err)
	}
	q.Version++
	steps.record(ctx, StepAnswer, start, b.now().Sub(start), "done", nil, map[string]any{"question": q.ID, "asked": q.Asked})
	if q.Status == QuestionSubmitted {
		return true, b.submit(ctx, r, p, steps, q)
	}
	text, choices := q.prompt(lang, false)
	return true, b.endWith(ctx, r, p, steps, RunSucceeded, text, choices)
}

// take records r's message as the answer to q's current input or action. retry is set (the reason) when the
// message does not answer it, and the same prompt is asked again.
func (b *Bot) take(ctx context.Context, r *Run, p Platform, steps *stepLog, q *Question) (retry string, err error) {
	lang := b.cfg.Language
	text := strings.TrimSpace(r.Message.Text)
	if q.Answers == nil {
		q.Answers = map[string]any{}
	}
	if q.Asked >= len(q.Form.Inputs) {
		for _, a := range q.Form.Actions {
			if strings.EqualFold(text, a.Title) || text == a.ID {
				q.Action = a.ID
				return "", nil
			}
		}
		return notAChoice.in(lang), nil
	}
	in := q.Form.Inputs[q.Asked]
	switch in.Type {
	case "select":
		i := slices.IndexFunc(in.Options, func(o string) bool { return strings.EqualFold(o, text) })
		if i < 0 {
			return notAChoice.in(lang), nil
		}
		q.Answers[in.Name] = in.Options[i]
	case "file", "file-list":
		if len(r.Message.Files) == 0 {
			return "", nil // The prompt says what to send.
		}
		refs, err := b.prepareImages(ctx, r, p, steps, request{parts: []Message{r.Message}, user: difyUser(q.Message)})
		if err != nil {
			return "", err
		}
		if in.Type == "file" {
			q.Answers[in.Name] = refs[0]
		} else {
			if in.Limit > 0 && len(refs) > in.Limit {
				refs = refs[:in.Limit]
			}
			q.Answers[in.Name] = refs
		}
	default:
		if text == "" {
			return "", nil
		}
		q.Answers[in.Name] = r.Message.Text
	}
	q.Asked++
	return "", nil
}

// submit sends q's answers once and follows the Dify run to its answer (or its next question). A form sent
// before a restart is sent again harmlessly: Dify answers 412 already submitted, which is success.
func (b *Bot) submit(ctx context.Context, r *Run, p Platform, steps *stepLog, q Question) error {
	prefix := ""
	err := steps.do(ctx, StepRun, func(fields map[string]any) error {
		fields["form_id"], fields["action"] = q.ID, q.Action
		return b.appFor(r).Workflows.SubmitForm(ctx, q.Form.Token, dify.Submission{Inputs: q.Answers, Action: q.Action, User: difyUser(q.Message)})
	})
	if errors.Is(err, dify.ErrFormExpired) {
		// Too late after all: the run took the node's timeout branch; answer with what it produced.
		prefix, err = formExpired.in(b.cfg.Language), nil
	}
	if err != nil {
		return b.finish(ctx, r, p, steps, "", err)
	}
	return b.follow(ctx, r, p, steps, q, prefix)
}

// followExpired follows the Dify run of a question whose form expired, for the message the bot made for it.
func (b *Bot) followExpired(ctx context.Context, r *Run, p Platform, steps *stepLog, q Question) error {
	if q.Status == QuestionAsking {
		q.Status, q.Follower, q.UpdatedAt = QuestionExpired, r.ID, b.now()
		err := b.cfg.Store.SaveQuestion(ctx, q)
		if err != nil && !errors.Is(err, ErrQuestionMoved) {
			return fmt.Errorf("bot: run %s: %w", r.ID, err)
		}
		if err != nil {
			if q, err = b.cfg.Store.Question(ctx, q.ID); err != nil {
				return fmt.Errorf("bot: run %s: %w", r.ID, err)
			}
		}
	}
	if q.Status != QuestionExpired || q.Follower != r.ID {
		return b.endWith(ctx, r, p, steps, RunSucceeded, "", nil) // Answered at the last moment: its answerer follows.
	}
	b.start(ctx, r, p)
	return b.follow(ctx, r, p, steps, q, expiredRunOn.in(b.cfg.Language))
}

// follow follows q's Dify run after its form was answered (or expired) and replies with its answer, prefixed.
func (b *Bot) follow(ctx context.Context, r *Run, p Platform, steps *stepLog, q Question, prefix string) error {
	answered := append(slices.Clone(q.Earlier), q.ID)
	var ans difyAnswer
	err := steps.do(ctx, StepRun, func(fields map[string]any) error {
		fctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		defer cancel()
		fields["dify_run_id"], fields["follows"] = q.DifyRunID, true
		onEvent := b.onEvent(ctx, r, p)
		run, err := b.appFor(r).Workflows.FollowRun(fctx, dify.FollowRequest{RunID: q.DifyRunID, User: difyUser(q.Message),
			Answered: answered, OnEvent: onEvent})
		if run != nil {
			ans = runAnswer(run)
		}
		return err
	})
	if ctx.Err() != nil {
		return fmt.Errorf("bot: run %s interrupted: %w", r.ID, ctx.Err())
	}
	if pe := askable(err); pe != nil {
		return b.ask(ctx, r, p, steps, pe, answered, q.UserID) // The next Human Input node.
	}
	if err != nil {
		return b.finish(ctx, r, p, steps, "", err)
	}
	text, err := b.format(ctx, r, steps, ans)
	if err == nil && prefix != "" {
		text = prefix + "\n\n" + text
	}
	return b.finish(ctx, r, p, steps, text, err)
}

// answerSteps is the step list of a message that answers a question.
func answerSteps(files int) []string {
	if files > 0 {
		return []string{StepReceive, StepEnqueue, StepFetch, StepCheck, StepUpload, StepAnswer, StepRun, StepFormat, StepReply}
	}
	return []string{StepReceive, StepEnqueue, StepAnswer, StepRun, StepFormat, StepReply}
}

// ExpireQuestions makes, for each question whose form expired, a message of the bot's own in its
// conversation: its run follows the Dify run (which takes the node's timeout branch) and answers with what it
// produced. The message's event id is the question's, so each is made once. serve calls it periodically.
func (b *Bot) ExpireQuestions(ctx context.Context) error {
	due, err := b.cfg.Store.DueQuestions(ctx, b.now())
	if err != nil {
		return fmt.Errorf("bot: expire questions: %w", err)
	}
	for _, q := range due {
		m := q.Message
		m.EventID, m.Text, m.Files, m.ReplyToken, m.Redelivery = "question-expired:"+q.ID, "", nil, "", false
		m.Set, m.PhotosBefore, m.PhotosTotal, m.ReceivedAt, m.Question = nil, 0, 0, b.now(), q.ID
		if _, _, err := b.cfg.Store.Enqueue(ctx, m); err != nil {
			return fmt.Errorf("bot: expire question %s: %w", q.ID, err)
		}
	}
	return nil
}
