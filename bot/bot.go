package bot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/difybot/difybot/dify"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"
)

// Workflows is the part of Dify the pipeline uses. *dify.Client implements it.
type Workflows interface {
	AppSource
	UploadFile(ctx context.Context, u dify.Upload) (*dify.File, error)
	// OpenFile starts downloading a file of an answer: its body and the type its server claims.
	OpenFile(ctx context.Context, f dify.OutputFile) (io.ReadCloser, string, error)
	RunWorkflow(ctx context.Context, req dify.RunRequest) (*dify.Run, error)
	SendChatMessage(ctx context.Context, req dify.ChatRequest) (*dify.ChatReply, error)
	WaitRun(ctx context.Context, runID string) (*dify.Run, error)
	WaitMessage(ctx context.Context, conversationID, messageID, user string) (*dify.ChatReply, error)
	// GetForm, SubmitForm and FollowRun answer a run paused at a Human Input node (a *dify.PausedError).
	GetForm(ctx context.Context, token string) (*dify.Form, error)
	SubmitForm(ctx context.Context, token string, s dify.Submission) error
	FollowRun(ctx context.Context, req dify.FollowRequest) (*dify.Run, error)
	// Ready returns nil when calls may be made now, else why not (dify.ErrBreakerOpen, dify.ErrMaintenance).
	Ready() error
}

// Config wires a Bot. Store and Workflows are required; Platforms are the adapters whose runs it answers.
type Config struct {
	Store Store
	// Workflows, App, ImagePrompt and OutputKey are the one Dify app of a bot without Apps.
	Workflows Workflows
	// Apps are several Dify apps, when the bot has them (DIFY_APPS_FILE); Routes say which a message uses.
	Apps      []AppConfig
	Routes    Routes
	Platforms []Platform
	Logger    zerolog.Logger

	App          AppSettings
	ImagePrompt  string            // IMAGE_PROMPT: the text sent with a photo that comes alone.
	PendingTTL   time.Duration     // How long a message waits for the rest of its request; default 10m.
	ResponseMode dify.ResponseMode // Default streaming.
	OutputKey    string            // auto, or output names separated by commas, shown in that order.

	// PublicURL is the bot's public base (PUBLIC_URL), for links to the files it sends; "" when unknown.
	PublicURL          string
	MaxOutputFileBytes int64         // MAX_OUTPUT_FILE_BYTES; default DefaultMaxOutputFileBytes.
	OutputFileTTL      time.Duration // OUTPUT_FILE_TTL; default DefaultOutputFileTTL.
	HumanInputBy       string        // HUMAN_INPUT_BY: AnswerByRequester (default) or AnswerByAnyone.

	Timeout       time.Duration // One Dify run; default 10m.
	MaxImageBytes int64         // MAX_IMAGE_BYTES: the largest download; default 25 MiB.
	// MaxImagePixels (MAX_IMAGE_PIXELS): larger images are refused without being decoded; default 40 MP.
	MaxImagePixels int64
	// ImageMaxSide (IMAGE_MAX_SIDE): photos with a longer side are scaled down to it; default 2048, negative
	// never resizes.
	ImageMaxSide int
	FetchTimeout time.Duration // FETCH_TIMEOUT: downloading one photo from the platform; default 60s.
	FetchIdle    time.Duration // A download that brings no byte for this long is given up; default 15s.
	HoldMax      time.Duration // How long a run waits for an open breaker; default 15m.
	HoldRetry    time.Duration // How often a held run looks again; default 5s.
	Share        Share         // One person's fair share of Dify; zero is no limit. The store enforces it (Admitter).
	Lane         *Lane         // The fast lane for first feedback, shared with the inbox; nil: the worker sends it.
	Language     Lang          // Default en.
	TempDir      string        // Where images are spooled; default os.TempDir().
	Metrics      *Metrics      // Optional; nil records nothing.
	Now          func() time.Time
}

// Bot runs messages through the pipeline. It is safe for concurrent use.
type Bot struct {
	cfg       Config
	log       zerolog.Logger
	platforms map[string]Platform
	signer    *fileSigner
	decodes   *semaphore.Weighted // Photos being decoded (decodeSlots).
	apps      map[string]*appRef
	order     []string          // App names, in the configuration's order.
	chats     map[string]string // "platform:chat" → app.
	keywords  map[string]string // Keyword → app.
}

// New returns a Bot for cfg.
func New(cfg Config) (*Bot, error) {
	if cfg.Store == nil || (cfg.Workflows == nil && len(cfg.Apps) == 0) {
		return nil, errors.New("bot: Store and Workflows (or Apps) are required")
	}
	if cfg.ResponseMode == "" {
		cfg.ResponseMode = dify.Streaming
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = DefaultMaxImageBytes
	}
	if cfg.MaxImagePixels <= 0 {
		cfg.MaxImagePixels = DefaultMaxImagePixels
	}
	if cfg.ImageMaxSide == 0 {
		cfg.ImageMaxSide = DefaultImageMaxSide
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.FetchIdle <= 0 {
		cfg.FetchIdle = DefaultFetchIdle
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
	if cfg.MaxOutputFileBytes <= 0 {
		cfg.MaxOutputFileBytes = DefaultMaxOutputFileBytes
	}
	if cfg.OutputFileTTL <= 0 {
		cfg.OutputFileTTL = DefaultOutputFileTTL
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	b := &Bot{cfg: cfg, log: cfg.Logger, platforms: map[string]Platform{}, signer: &fileSigner{store: cfg.Store},
		decodes: semaphore.NewWeighted(decodeSlots)}
	if err := b.setupApps(); err != nil {
		return nil, err
	}
	for _, p := range cfg.Platforms {
		if _, dup := b.platforms[p.Name()]; dup {
			return nil, fmt.Errorf("bot: two platforms are named %q", p.Name())
		}
		b.platforms[p.Name()] = p
	}
	return b, nil
}

func (b *Bot) now() time.Time { return b.cfg.Now() }

// App returns what the bot knows of the default Dify app, discovering it when the cached view is older than appTTL.
func (b *Bot) App(ctx context.Context) (*App, error) {
	return b.discover(ctx, b.apps[b.cfg.Routes.Default])
}

// ForgetApp drops what the bot knows of its Dify apps, so that the next message discovers them again: for an app
// whose start form is known to have changed just now (the demo's simulator switching shapes).
func (b *Bot) ForgetApp() {
	for _, a := range b.apps {
		a.cache.forget()
	}
}

// Process runs one queued run to its reply. The queue calls it; it is safe to call again for the same run
// after a crash: a workflow that started is waited for, never posted again, and a reply is sent once.
// It returns a *HoldError while the breaker keeps the run waiting, and an error only when the queue should
// try again (the store or the platform's reply failed). On the queue's last attempt (FinalAttempt) it ends the
// run with a diagnosis reply instead.
func (b *Bot) Process(ctx context.Context, runID string) error {
	final := isFinal(ctx)
	att := &attempt{start: b.now()}
	work, cancel := ctx, context.CancelFunc(func() {})
	if final {
		work, cancel = reserve(ctx, att.start)
	}
	defer cancel()
	err := b.process(work, runID, att)
	if errors.Is(err, ErrStaleAttempt) {
		// A Retry replaced this attempt after it answered; the new attempt's job does the rest.
		b.log.Info().Str("run_id", runID).Msg("run was retried while this attempt finished; leaving it to the new attempt")
		return nil
	}
	var hold *HoldError
	if err == nil || !final || errors.As(err, &hold) || errors.Is(err, ErrNotFound) || errors.Is(ctx.Err(), context.Canceled) {
		// A shutdown's cancellation spends no attempt: the run resumes at the next start.
		return err
	}
	return b.giveUp(ctx, runID, att, err, errors.Is(work.Err(), context.DeadlineExceeded))
}

func (b *Bot) process(ctx context.Context, runID string, att *attempt) error {
	r, err := b.cfg.Store.Run(ctx, runID)
	if err != nil {
		return fmt.Errorf("bot: load run %s: %w", runID, err)
	}
	log := b.log.With().Str("run_id", r.ID).Str("platform", r.Platform).Int("attempt", r.Attempt).Logger()
	p, ok := b.platforms[r.Platform]
	if !ok {
		return fmt.Errorf("bot: run %s: no platform %q is configured", r.ID, r.Platform)
	}
	steps := &stepLog{store: b.cfg.Store, metrics: b.cfg.Metrics, log: log, run: &r, names: stepsFor(len(r.Message.Files), len(r.Choices) > 0), now: b.now, att: att}

	if r.Status == RunSucceeded || r.Status == RunFailed || r.Status == RunWaiting {
		return b.reply(ctx, &r, p, steps) // The answer is known; only its delivery may be missing.
	}
	if done, err := b.routeRun(ctx, &r, p, steps); done {
		return err
	}
	if r.App != "" {
		log = log.With().Str("app", r.App).Logger()
		steps.log = log
	}
	if err := b.appFor(&r).Workflows.Ready(); err != nil && r.DifyRunID == "" {
		return b.hold(ctx, &r, p, steps, err)
	}
	if handled, err := b.answer(ctx, &r, p, steps); handled {
		return err // The message answers a workflow's Human Input question.
	}
	q, wait, err := b.plan(ctx, &r)
	if err != nil {
		return fmt.Errorf("bot: plan run %s: %w", r.ID, err) // The store failed: the queue tries again.
	}
	steps.names = stepsFor(q.fileCount(), wait != "" || q.joined != "")
	if r.Status == RunQueued || r.Status == RunHeld {
		if r.Status == RunQueued {
			b.received(ctx, &r, steps)
		}
		r.DifyRunID, r.DifyTaskID, r.DifyMessageID = "", "", ""
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
		if len(r.Message.Files) > 0 { // A photo waits for its question: offer Dify's suggested ones.
			r.Choices = b.suggestions(ctx, &r)
		}
		return b.finish(ctx, &r, p, steps, wait, nil)
	}
	if ok, err := b.admit(ctx, &r, p, steps); !ok {
		return err
	}
	b.start(ctx, &r, p)

	text, err := b.execute(ctx, &r, p, steps, q)
	if pe := askable(err); pe != nil && ctx.Err() == nil {
		return b.ask(ctx, &r, p, steps, pe, nil, r.Message.UserID) // The workflow asks back.
	}
	if ctx.Err() != nil {
		// The queue is stopping (or gave up on the job): leave the run unfinished; the next start, or another
		// replica, resumes it, waiting for a workflow that already started instead of telling the person it failed.
		return fmt.Errorf("bot: run %s interrupted: %w", r.ID, ctx.Err())
	}
	if errors.Is(err, dify.ErrBreakerOpen) || errors.Is(err, dify.ErrMaintenance) || dify.ConcurrencyLimited(err) {
		// Dify cannot take the run now (and did not start it): it waits in the queue, never fails for that,
		// until HoldMax.
		return b.hold(ctx, &r, p, steps, err)
	}
	return b.finish(ctx, &r, p, steps, text, err)
}

// received records steps 1 and 2, which happened in the adapter; they are recorded here to keep the ack path to
// one write. ReceivedAt is the platform's own event time (LINE's is when the person sent it, and a redelivery
// keeps it), so the gap to our enqueue is reported as the delivery lag, not as the step's duration.
func (b *Bot) received(ctx context.Context, r *Run, steps *stepLog) {
	steps.record(ctx, StepReceive, r.Message.ReceivedAt, 0, "done", nil, nil)
	steps.record(ctx, StepEnqueue, r.CreatedAt, 0, "done", nil,
		map[string]any{"delivery_lag_ms": max(r.CreatedAt.Sub(r.Message.ReceivedAt), 0).Milliseconds()})
}

// finish stores the outcome before replying, so a crash after this point only repeats the delivery.
func (b *Bot) finish(ctx context.Context, r *Run, p Platform, steps *stepLog, text string, err error) error {
	b.conclude(r, text, err)
	if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
		return fmt.Errorf("bot: save run %s: %w", r.ID, err)
	}
	b.cfg.Metrics.ObserveRun(*r)
	return b.reply(ctx, r, p, steps)
}

// conclude sets the run's outcome: text, or the diagnosis of err and the person's explanation.
func (b *Bot) conclude(r *Run, text string, err error) {
	r.FinishedAt = b.now()
	r.Status, r.Reply, r.Code, r.Diagnosis = RunSucceeded, text, "", nil
	if err != nil {
		d := Diagnose(err)
		r.Status, r.Code, r.Diagnosis = RunFailed, d.Code, &d
		r.Reply = d.UserText(b.cfg.Language, r.ID)
		if d.Code == CodeDifyHumanInput {
			r.Status = RunWaiting // The Dify run has not failed: it waits for someone the bot cannot reach.
		}
	}
	if label := batchLabel(b.cfg.Language, r.Batch); label != "" {
		r.Reply = label + "\n" + r.Reply
	}
}

// reply delivers a finished run's answer once per attempt.
func (b *Bot) reply(ctx context.Context, r *Run, p Platform, steps *stepLog) error {
	if r.RepliedAttempt == r.Attempt {
		return b.queueRest(ctx, r) // A crash may have come between the delivery and queueing the next photos.
	}
	b.awaitFeedback(ctx, r, true)
	keep := b.keepsFiles(ctx, r)
	err := steps.do(ctx, StepReply, func(fields map[string]any) error {
		var files []ReplyFile
		if r.Status == RunSucceeded && !r.noOutputs {
			var err error
			if files, err = b.outputFiles(ctx, r); err != nil {
				return err // The store failed: the queue tries the delivery again.
			}
			if len(files) > 0 {
				fields["files"] = len(files)
			}
		}
		err := p.Reply(ctx, r.Message, Reply{Text: r.Reply, Diagnosis: r.Diagnosis, Choices: r.Choices, RunID: r.ID, Attempt: r.Attempt, Final: true,
			KeepFiles: keep, State: b.state(r), Files: files})
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
	if len(r.Message.Files) == 0 {
		return false // Nothing to keep, so no need to ask the store (a lookup of every text message).
	}
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
	return s.store.SetState(ctx, s.r.ID, s.r.Attempt, map[string]string{k: v})
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
		if a, err := b.runApp(ctx, r); err == nil { // Else the check step reports why the app is unknown.
			if q, err = b.split(ctx, r, q, a); err != nil {
				return "", err
			}
		}
		var err error
		if refs, err = b.prepareImages(ctx, r, p, steps, q); err != nil {
			return "", err
		}
	}
	var ans difyAnswer
	err := steps.do(ctx, StepRun, func(fields map[string]any) error {
		var err error
		if len(q.took) > 0 {
			fields["completes"] = q.took
		}
		ans, err = b.runDify(ctx, r, p, q.text, refs, fields)
		return err
	})
	if err != nil {
		return "", err
	}
	return b.format(ctx, r, steps, ans)
}

// format chooses the text to reply with (step 7): the output DIFY_OUTPUT_KEY names, or a chat app's answer,
// and fetches the answer's files.
func (b *Bot) format(ctx context.Context, r *Run, steps *stepLog, ans difyAnswer) (string, error) {
	var text string
	err := steps.do(ctx, StepFormat, func(fields map[string]any) error {
		// The files first: Dify's links to them expire within minutes.
		kept, notes := b.fetchOutputs(ctx, r, ans.files, fields)
		key := "answer"
		text = stripThink(ans.answer)
		switch {
		case ans.replaced != "":
			text, key = stripThink(ans.replaced), "text_replace"
		case ans.outputs != nil:
			text, key = outputTexts(ans.outputs, ans.outputsJSON, b.appFor(r).OutputKey)
		}
		fields["output_key"], fields["chars"] = key, len([]rune(text))
		if strings.TrimSpace(text) == "" {
			if len(kept) == 0 && len(notes) == 0 {
				return Classified(CodeDifyNoOutput, "format", fmt.Errorf("the run succeeded without a usable output (outputs: %s)", outputKeys(ans.outputs)))
			}
			text = "📎 " + strings.Join(kept, ", ") // The answer is its files: the text names them.
		}
		text = withNotes(text, notes)
		return nil
	})
	return text, err
}

// prepareImages fetches, checks and uploads the message's images (steps 3 to 5).
func (b *Bot) prepareImages(ctx context.Context, r *Run, p Platform, steps *stepLog, q request) ([]dify.FileRef, error) {
	var imgs []*attachment
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
		a, err := b.runApp(ctx, r)
		if err != nil {
			return err
		}
		lim := b.photoLimits(a)
		var types, from, to []string
		var took time.Duration
		defer func() {
			fields["original"], fields["sent"] = strings.Join(from, ", "), strings.Join(to, ", ")
			fields["processing_ms"] = float64(took.Microseconds()) / 1000
			if len(types) > 0 {
				fields["types"] = strings.Join(types, ",")
			}
		}()
		for _, im := range imgs {
			if err := im.sniff(); err != nil {
				return err
			}
			s, err := b.shape(ctx, im, lim)
			from, took = append(from, s.from.String()), took+s.took
			if err != nil {
				return err
			}
			if err := im.rename(); err != nil {
				return fmt.Errorf("check: %w", err)
			}
			to, types = append(to, s.to.String()), append(types, im.mimeType)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var refs []dify.FileRef
	err = steps.do(ctx, StepUpload, func(fields map[string]any) error {
		var ids []string
		for _, im := range imgs {
			user := q.user
			if user == "" {
				user = difyUser(r.Message)
			}
			f, err := b.appFor(r).Workflows.UploadFile(ctx, dify.Upload{User: user, Name: im.name, MIMEType: im.mimeType, Body: im.file})
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
