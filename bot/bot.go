package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/difybot/difybot/dify"
	"github.com/rs/zerolog"
)

// Workflows is the part of Dify the pipeline uses. *dify.Client implements it.
type Workflows interface {
	AppSource
	UploadFile(ctx context.Context, u dify.Upload) (*dify.File, error)
	RunWorkflow(ctx context.Context, req dify.RunRequest) (*dify.Run, error)
	SendChatMessage(ctx context.Context, req dify.ChatRequest) (*dify.ChatReply, error)
	WaitRun(ctx context.Context, runID string) (*dify.Run, error)
	// Ready returns nil when calls may be made now, else why not (dify.ErrBreakerOpen, dify.ErrMaintenance).
	Ready() error
}

// Config wires a Bot. Store and Workflows are required; Platforms are the adapters whose runs it answers.
type Config struct {
	Store     Store
	Workflows Workflows
	Platforms []Platform
	Logger    zerolog.Logger

	App          AppSettings
	ImagePrompt  string            // IMAGE_PROMPT: the text sent with a photo that comes alone.
	PendingTTL   time.Duration     // How long a message waits for the rest of its request; default 10m.
	ResponseMode dify.ResponseMode // Default streaming.
	OutputKey    string            // auto or an output name.

	Timeout       time.Duration // One Dify run; default 10m.
	MaxImageBytes int64         // Default 10 MiB.
	HoldMax       time.Duration // How long a run waits for an open breaker; default 15m.
	HoldRetry     time.Duration // How often a held run looks again; default 5s.
	Language      Lang          // Default en.
	TempDir       string        // Where images are spooled; default os.TempDir().
	Metrics       *Metrics      // Optional; nil records nothing.
	Now           func() time.Time
}

// Bot runs messages through the pipeline. It is safe for concurrent use.
type Bot struct {
	cfg       Config
	log       zerolog.Logger
	platforms map[string]Platform
	app       appCache
}

// New returns a Bot for cfg.
func New(cfg Config) (*Bot, error) {
	if cfg.Store == nil || cfg.Workflows == nil {
		return nil, errors.New("bot: Store and Workflows are required")
	}
	if cfg.ResponseMode == "" {
		cfg.ResponseMode = dify.Streaming
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = 10 << 20
	}
	if cfg.HoldMax <= 0 {
		cfg.HoldMax = 15 * time.Minute
	}
	if cfg.HoldRetry <= 0 {
		cfg.HoldRetry = 5 * time.Second
	}
	if cfg.Language == "" {
		cfg.Language = "en"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PendingTTL <= 0 {
		cfg.PendingTTL = DefaultPendingTTL
	}
	b := &Bot{cfg: cfg, log: cfg.Logger, platforms: map[string]Platform{}}
	for _, p := range cfg.Platforms {
		if _, dup := b.platforms[p.Name()]; dup {
			return nil, fmt.Errorf("bot: two platforms are named %q", p.Name())
		}
		b.platforms[p.Name()] = p
	}
	return b, nil
}

func (b *Bot) now() time.Time { return b.cfg.Now() }

// App returns what the bot knows of the Dify app, discovering it when the cached view is older than appTTL.
func (b *Bot) App(ctx context.Context) (*App, error) {
	return b.app.get(ctx, b.now, func(ctx context.Context) (*App, error) { return Discover(ctx, b.cfg.Workflows, b.cfg.App) })
}

// Process runs one queued run to its reply. The queue calls it; it is safe to call again for the same run
// after a crash: a workflow that started is waited for, never posted again, and a reply is sent once.
// It returns a *HoldError while the breaker keeps the run waiting, and an error only when the queue should
// try again (the store or the platform's reply failed).
func (b *Bot) Process(ctx context.Context, runID string) error {
	err := b.process(ctx, runID)
	if errors.Is(err, ErrStaleAttempt) {
		// A Retry replaced this attempt after it answered; the new attempt's job does the rest.
		b.log.Info().Str("run_id", runID).Msg("run was retried while this attempt finished; leaving it to the new attempt")
		return nil
	}
	return err
}

func (b *Bot) process(ctx context.Context, runID string) error {
	r, err := b.cfg.Store.Run(ctx, runID)
	if err != nil {
		return fmt.Errorf("bot: load run %s: %w", runID, err)
	}
	log := b.log.With().Str("run_id", r.ID).Str("platform", r.Platform).Int("attempt", r.Attempt).Logger()
	p, ok := b.platforms[r.Platform]
	if !ok {
		return fmt.Errorf("bot: run %s: no platform %q is configured", r.ID, r.Platform)
	}
	steps := &stepLog{store: b.cfg.Store, metrics: b.cfg.Metrics, log: log, run: &r, names: stepsFor(len(r.Message.Files), len(r.Choices) > 0), now: b.now}

	if r.Status == RunSucceeded || r.Status == RunFailed {
		return b.reply(ctx, &r, p, steps) // The answer is known; only its delivery may be missing.
	}
	if err := b.cfg.Workflows.Ready(); err != nil && r.DifyRunID == "" {
		return b.hold(ctx, &r, p, steps, err)
	}
	q, wait, err := b.plan(ctx, &r)
	if err != nil {
		return fmt.Errorf("bot: plan run %s: %w", r.ID, err) // The store failed: the queue tries again.
	}
	steps.names = stepsFor(q.fileCount(), wait != "" || q.joined != "")
	if r.Status == RunQueued || r.Status == RunHeld {
		if r.Status == RunQueued {
			// Steps 1 and 2 happened in the adapter; they are recorded here to keep the ack path to one write.
			// ReceivedAt is the platform's own event time (LINE's is when the person sent it, and a redelivery
			// keeps it), so the gap to our enqueue is reported as the delivery lag, not as the step's duration.
			steps.record(ctx, StepReceive, r.Message.ReceivedAt, 0, "done", nil, nil)
			steps.record(ctx, StepEnqueue, r.CreatedAt, 0, "done", nil,
				map[string]any{"delivery_lag_ms": max(r.CreatedAt.Sub(r.Message.ReceivedAt), 0).Milliseconds()})
		}
		r.DifyRunID, r.DifyTaskID = "", ""
	}
	if q.joined != "" {
		// The message went into another run's request, whose answer covers it.
		steps.record(ctx, StepPending, b.now(), 0, "joined", nil, map[string]any{"with": q.joined})
		r.Status, r.FinishedAt, r.RepliedAttempt = RunSucceeded, b.now(), r.Attempt
		if err := b.cfg.Store.SaveRun(ctx, r); err != nil {
			return fmt.Errorf("bot: save run %s: %w", r.ID, err)
		}
		return nil
	}
	if wait != "" {
		// The message waits for the rest of its request; the person is asked for it.
		steps.record(ctx, StepPending, b.now(), 0, "waiting", nil, map[string]any{"files": len(r.Message.Files),
			"expires_in_s": int(b.cfg.PendingTTL.Seconds())})
		r.Choices = nil
		if wait != askPhoto(b.cfg.Language) {
			r.Choices = b.suggestions(ctx)
		}
		return b.finish(ctx, &r, p, steps, wait, nil)
	}
	r.Status = RunRunning
	if err := b.cfg.Store.SaveRun(ctx, r); err != nil {
		return fmt.Errorf("bot: save run %s: %w", r.ID, err)
	}
	if pr, ok := p.(ProgressReporter); ok {
		if err := pr.Progress(ctx, r.Message, Progress{RunID: r.ID, Attempt: r.Attempt, State: b.state(&r), Step: "start"}); err != nil {
			log.Warn().Err(err).Msg("could not show that work started")
		}
	}

	text, err := b.execute(ctx, &r, p, steps, q)
	if ctx.Err() != nil {
		// The queue is stopping (or gave up on the job): leave the run unfinished; the next start, or another
		// replica, resumes it, waiting for a workflow that already started instead of telling the person it failed.
		return fmt.Errorf("bot: run %s interrupted: %w", r.ID, ctx.Err())
	}
	if errors.Is(err, dify.ErrBreakerOpen) || errors.Is(err, dify.ErrMaintenance) {
		return b.hold(ctx, &r, p, steps, err)
	}
	return b.finish(ctx, &r, p, steps, text, err)
}

// finish stores the outcome before replying, so a crash after this point only repeats the delivery.
func (b *Bot) finish(ctx context.Context, r *Run, p Platform, steps *stepLog, text string, err error) error {
	r.FinishedAt = b.now()
	r.Status, r.Reply, r.Code, r.Diagnosis = RunSucceeded, text, "", nil
	if err != nil {
		d := Diagnose(err)
		r.Status, r.Code, r.Diagnosis = RunFailed, d.Code, &d
		r.Reply = d.UserText(b.cfg.Language, r.ID)
	}
	if label := batchLabel(b.cfg.Language, r.Batch); label != "" {
		r.Reply = label + "\n" + r.Reply
	}
	if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
		return fmt.Errorf("bot: save run %s: %w", r.ID, err)
	}
	b.cfg.Metrics.ObserveRun(*r)
	return b.reply(ctx, r, p, steps)
}

// reply delivers a finished run's answer once per attempt.
func (b *Bot) reply(ctx context.Context, r *Run, p Platform, steps *stepLog) error {
	if r.RepliedAttempt == r.Attempt {
		return b.queueRest(ctx, r) // A crash may have come between the delivery and queueing the next photos.
	}
	keep := b.keepsFiles(ctx, r)
	err := steps.do(ctx, StepReply, func(map[string]any) error {
		err := p.Reply(ctx, r.Message, Reply{Text: r.Reply, Diagnosis: r.Diagnosis, Choices: r.Choices, RunID: r.ID, Attempt: r.Attempt, Final: true,
			KeepFiles: keep, State: b.state(r)})
		if err != nil {
			var be *Error
			if !errors.As(err, &be) {
				err = Classified(CodePlatformReplyFailed, "reply", err)
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("bot: run %s: %w", r.ID, err) // The queue retries the delivery.
	}
	r.RepliedAttempt = r.Attempt
	if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
		return fmt.Errorf("bot: save run %s: %w", r.ID, err)
	}
	return b.queueRest(ctx, r)
}

// keepsFiles reports whether a later run reads r's message files again: the message waits for the rest of its
// request (or was taken by the run that completes it), or r queues the photos after its share. When the store
// cannot say, the files are kept: a leftover upload is better than a lost photo.
func (b *Bot) keepsFiles(ctx context.Context, r *Run) bool {
	if r.Batch != nil && r.Batch.Rest != nil {
		return true
	}
	p, err := b.cfg.Store.Pending(ctx, r.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return false
	case err != nil:
		return true
	}
	return p.TakenBy != r.ID // A photo of a set that went on holds its own message.
}

// state gives a platform the run's State, saved with the run on every Set.
func (b *Bot) state(r *Run) RunState { return runState{r: r, store: b.cfg.Store} }

type runState struct {
	r     *Run
	store Store
}

func (s runState) Get(k string) string { return s.r.State[k] }

func (s runState) Set(ctx context.Context, k, v string) error {
	setState(s.r, k, v)
	return s.store.SaveRun(ctx, *s.r)
}

func setState(r *Run, k, v string) {
	if r.State == nil {
		r.State = map[string]string{}
	}
	r.State[k] = v
}

// hold keeps a run queued while the breaker is open: the person hears once that the answer is delayed,
// and after HoldMax the run ends with the breaker's diagnosis.
func (b *Bot) hold(ctx context.Context, r *Run, p Platform, steps *stepLog, cause error) error {
	if b.now().Sub(r.CreatedAt) >= b.cfg.HoldMax {
		return b.finish(ctx, r, p, steps, "", cause)
	}
	first := !r.HeldNotified
	if first {
		d := Diagnose(cause)
		text := HeldText(b.cfg.Language, d.Code, r.ID)
		if err := p.Reply(ctx, r.Message, Reply{Text: text, Diagnosis: &d, RunID: r.ID, Attempt: r.Attempt, State: b.state(r)}); err != nil {
			steps.log.Warn().Err(err).Msg("could not tell the person the answer is delayed")
		}
		r.HeldNotified = true
		steps.record(ctx, StepRun, b.now(), 0, "held", cause, nil)
	}
	r.Status = RunHeld
	if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
		return fmt.Errorf("bot: save run %s: %w", r.ID, err)
	}
	if first {
		b.cfg.Metrics.ObserveRun(*r)
	}
	return &HoldError{After: b.cfg.HoldRetry, Reason: cause}
}

// execute runs steps 3 to 7 and returns the text to reply with.
func (b *Bot) execute(ctx context.Context, r *Run, p Platform, steps *stepLog, q request) (string, error) {
	var refs []dify.FileRef
	if q.fileCount() > 0 && r.DifyRunID == "" {
		if a, err := b.App(ctx); err == nil { // Else the check step reports why the app is unknown.
			if q, err = b.split(ctx, r, q, a); err != nil {
				return "", err
			}
		}
		var err error
		if refs, err = b.prepareImages(ctx, r, p, steps, q); err != nil {
			return "", err
		}
	}
	var outputs map[string]any
	var answer string
	err := steps.do(ctx, StepRun, func(fields map[string]any) error {
		var err error
		if len(q.took) > 0 {
			fields["completes"] = q.took
		}
		outputs, answer, err = b.runDify(ctx, r, p, q.text, refs, fields)
		return err
	})
	if err != nil {
		return "", err
	}
	var text string
	err = steps.do(ctx, StepFormat, func(fields map[string]any) error {
		var key string
		text, key = answer, "answer"
		if outputs != nil {
			text, key = pickOutput(outputs, b.cfg.OutputKey)
		}
		fields["output_key"], fields["chars"] = key, len([]rune(text))
		if strings.TrimSpace(text) == "" {
			return Classified(CodeDifyNoOutput, "format", fmt.Errorf("the run succeeded without a usable output (outputs: %s)", outputKeys(outputs)))
		}
		return nil
	})
	return text, err
}

// prepareImages fetches, checks and uploads the message's images (steps 3 to 5).
func (b *Bot) prepareImages(ctx context.Context, r *Run, p Platform, steps *stepLog, q request) ([]dify.FileRef, error) {
	var imgs []*image
	defer func() {
		for _, im := range imgs {
			im.close()
		}
	}()
	err := steps.do(ctx, StepFetch, func(fields map[string]any) error {
		var total int64
		for _, m := range q.parts {
			for _, f := range m.Files {
				im, err := b.fetch(ctx, p, m, f, b.cfg.MaxImageBytes)
				if err != nil {
					return err
				}
				imgs = append(imgs, im)
				total += im.size
			}
		}
		fields["files"], fields["bytes"] = len(imgs), total
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = steps.do(ctx, StepCheck, func(fields map[string]any) error {
		a, err := b.App(ctx)
		if err != nil {
			return err
		}
		var types []string
		for _, im := range imgs {
			if err := im.check(a.ImageLimit); err != nil {
				return err
			}
			types = append(types, im.mimeType)
		}
		fields["types"] = strings.Join(types, ",")
		return nil
	})
	if err != nil {
		return nil, err
	}
	var refs []dify.FileRef
	err = steps.do(ctx, StepUpload, func(fields map[string]any) error {
		var ids []string
		for _, im := range imgs {
			f, err := b.cfg.Workflows.UploadFile(ctx, dify.Upload{User: difyUser(r.Message), Name: im.name, MIMEType: im.mimeType, Body: im.file})
			if err != nil {
				return err
			}
			refs = append(refs, dify.LocalImage(f.ID))
			ids = append(ids, f.ID)
		}
		fields["file_id"] = strings.Join(ids, ",")
		return nil
	})
	return refs, err
}

// runDify runs the workflow or chat app (step 6), or waits for the run a crashed attempt started.
func (b *Bot) runDify(ctx context.Context, r *Run, p Platform, text string, refs []dify.FileRef, fields map[string]any) (map[string]any, string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if r.DifyRunID != "" {
		fields["dify_run_id"], fields["resumed"] = r.DifyRunID, true
		run, err := b.cfg.Workflows.WaitRun(ctx, r.DifyRunID)
		if err != nil {
			return nil, "", err
		}
		if answer, ok := run.Outputs["answer"].(string); ok && len(run.Outputs) == 1 {
			return nil, answer, nil
		}
		return run.Outputs, "", nil
	}
	if r.PostedAttempt == r.Attempt {
		// We may have started a run whose id never reached us; posting again could run it twice.
		return nil, "", Classified(CodeInternal, "run", errors.New("an earlier attempt was interrupted after sending the run to Dify and before Dify confirmed it; it is not sent again so it cannot run twice"))
	}
	a, err := b.App(ctx)
	if err != nil {
		return nil, "", err
	}
	if f := a.Missing; f != nil {
		return nil, "", Classified(CodeDifyInputInvalid, "inputs", fmt.Errorf("the workflow's start form requires %q (%s) and difybot has no value for it: set it in DIFY_INPUTS, give it a default in the Start node, or make it optional", f.Variable, f.Type))
	}
	r.PostedAttempt = r.Attempt
	if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
		return nil, "", fmt.Errorf("save run: %w", err)
	}
	onEvent := b.onEvent(ctx, r, p)
	user := difyUser(r.Message)
	fields["app"] = a.Summary()
	if a.Chat {
		key := r.Message.ConversationKey()
		conv, err := b.cfg.Store.Conversation(ctx, key)
		if err != nil {
			return nil, "", fmt.Errorf("load conversation: %w", err)
		}
		query := text
		if strings.TrimSpace(query) == "" {
			query = "(image)"
		}
		send := func(conv string) (*dify.ChatReply, error) {
			inputs, _ := a.inputs("", nil)
			return b.cfg.Workflows.SendChatMessage(ctx, dify.ChatRequest{Query: query, Inputs: inputs, User: user, ConversationID: conv,
				Files: refs, Mode: b.cfg.ResponseMode, OnEvent: onEvent})
		}
		reply, err := send(conv)
		if conv != "" && errors.Is(err, dify.ErrConversationGone) {
			// Dify no longer has the conversation (deleted, or ended); nothing ran, so start a new one, once.
			fields["conversation_restarted"] = true
			reply, err = send("")
		}
		if err != nil {
			return nil, "", err
		}
		fields["conversation_id"] = reply.ConversationID
		if reply.ConversationID != "" && reply.ConversationID != conv {
			r.ConversationID = reply.ConversationID
			if err := b.cfg.Store.SetConversation(ctx, key, reply.ConversationID); err != nil {
				return nil, "", fmt.Errorf("save conversation: %w", err)
			}
		}
		return nil, reply.Answer, nil
	}
	inputs, files := a.inputs(text, refs)
	run, err := b.cfg.Workflows.RunWorkflow(ctx, dify.RunRequest{Inputs: inputs, User: user, Files: files, Mode: b.cfg.ResponseMode, OnEvent: onEvent})
	if run != nil {
		fields["dify_run_id"] = run.ID
		if run.Recovered {
			fields["recovered"] = true
		}
	}
	if err != nil {
		return nil, "", err
	}
	return run.Outputs, "", nil
}

// heartbeatEvery is how often a long node's progress is shown again, riding on Dify's 10 s pings, so that
// indicators that lapse (LINE's loading animation lasts 60 s) stay on.
const heartbeatEvery = 30 * time.Second

// onEvent records the run's ids as soon as Dify names them (so a crash can resume), stores node events,
// and shows progress where the platform can.
func (b *Bot) onEvent(ctx context.Context, r *Run, p Platform) func(dify.Event) {
	pr, _ := p.(ProgressReporter)
	seq, done := 0, 0
	var node string
	var shown time.Time
	progress := func() {
		if pr == nil {
			return
		}
		shown = b.now()
		if err := pr.Progress(ctx, r.Message, Progress{RunID: r.ID, Attempt: r.Attempt, State: b.state(r), Step: StepRun, Node: node, Done: done}); err != nil {
			b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not show progress")
		}
	}
	return func(ev dify.Event) {
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
		case "node_started", "node_finished":
			seq++
			if ev.Event == "node_finished" {
				done++
			}
			e := NodeEvent{RunID: r.ID, Seq: seq, Event: ev.Event, NodeID: ev.Data.NodeID, NodeType: ev.Data.NodeType,
				Title: ev.Data.Title, Index: int(ev.Data.Index), Status: ev.Data.Status, Elapsed: ev.Data.ElapsedTime,
				Error: ev.Data.Error, At: b.now()}
			if err := b.cfg.Store.AddNodeEvent(ctx, e); err != nil {
				b.log.Error().Err(err).Str("run_id", r.ID).Msg("could not store node event")
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

// pickOutput chooses the output to reply with: the configured key, else the usual names, else the only string.
func pickOutput(outputs map[string]any, key string) (string, string) {
	if key != "" && key != "auto" {
		return stringify(outputs[key]), key
	}
	for _, k := range outputPreference {
		if s, ok := outputs[k].(string); ok && s != "" {
			return s, k
		}
	}
	var only, onlyKey string
	n := 0
	for k, v := range outputs {
		if s, ok := v.(string); ok {
			only, onlyKey = s, k
			n++
		}
	}
	if n == 1 {
		return only, onlyKey
	}
	return "", ""
}

func stringify(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	return fmt.Sprint(v)
}

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
