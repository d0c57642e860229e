package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A request may arrive over several messages: LINE photos never carry text, and people send the photo first and
// the question after it, or the question first. A message that lacks what the workflow requires waits, stored, as
// a Pending for its conversation and person; the next message that supplies the rest takes it and runs once with
// both. Taking is recorded with the taker, so a resumed run gets the same messages again and no message completes
// two requests.

// Pending is a message waiting for the rest of its request: a photo for its question, or a text for its photo.
type Pending struct {
	RunID     string // The message's run, which answered by asking for the rest.
	Key       string // Message.ConversationKey(), with the app when it is not the default one.
	Message   Message
	CreatedAt time.Time
	ExpiresAt time.Time
	TakenBy   string // The run it completed, PendingExpired, or "" while it waits.
}

// PendingView is what planning a run reads of the pending messages, at once (Store.PendingOf).
type PendingView struct {
	Held    []Pending // The messages the run holds (TakePending with no ids): it is resumed after a crash.
	Own     *Pending  // The run's own record; nil when it never waited.
	Waiting []Pending // The key's messages still waiting (Waiting).
}

// ViewPending sorts rows, oldest first, into what runID sees of key at now. A store reads the records
// runID holds, its own and key's waiting ones, in one go, and splits them here, so every store splits alike.
func ViewPending(rows []Pending, runID, key string, now time.Time) PendingView {
	var v PendingView
	for _, p := range rows {
		if p.TakenBy == runID {
			v.Held = append(v.Held, p)
		}
		if p.RunID == runID {
			v.Own = &p
		}
		if p.Key == key && p.TakenBy == "" && p.ExpiresAt.After(now) {
			v.Waiting = append(v.Waiting, p)
		}
	}
	return v
}

// PendingExpired is Pending.TakenBy for a message whose wait ran out.
const PendingExpired = "expired"

// DefaultPendingTTL is how long a message waits when Config.PendingTTL is not set.
const DefaultPendingTTL = 10 * time.Minute

// maxChoices is how many of Dify's suggested questions are offered as choices.
const maxChoices = 4

// request is what one run sends to Dify: the text, and the photos of this message and of those that waited for it.
type request struct {
	text  string
	parts []Message // Messages with files, oldest first; their files go in this order.
	took  []string  // Runs of the waiting messages this request completes.
	// joined is set when the message went into another run's request (a photo of a set): nothing to answer.
	joined string
	// user is the Dify user the files are uploaded for, when not the message's own (a Human Input answer from
	// someone other than the requester: uploads belong to a user, and the form is submitted as the requester).
	user string
}

// A LINE image set arrives as one event per photo. Each photo waits under its conversation; the last one to
// arrive (or, after setWait, the latest there is) goes on with all of them, and the others end silently.
const (
	setWait = 15 * time.Second
	setPoll = time.Second
)

var errSetIncomplete = errors.New("waiting for the other photos of the set")

func (q request) fileCount() int {
	n := 0
	for _, m := range q.parts {
		n += len(m.Files)
	}
	return n
}

// plan decides what r's message does: run now (alone, or completing waiting messages), or wait for the rest.
// wait is the text that asks for the rest; when it is not empty the message was stored as pending.
func (b *Bot) plan(ctx context.Context, r *Run) (q request, wait string, err error) {
	m := r.Message
	view, err := b.cfg.Store.PendingOf(ctx, r.ID, b.key(r), b.now())
	if err != nil {
		return request{}, "", err
	}
	if len(view.Held) > 0 {
		// Resumed after a crash: the same messages as before (a photo of a set that went on holds its own too).
		return merge(without(view.Held, r.ID), m, ""), "", nil
	}
	if own := view.Own; own != nil && own.TakenBy != "" && own.TakenBy != PendingExpired {
		return request{joined: own.TakenBy}, "", nil
	}
	hasText, hasFiles := strings.TrimSpace(m.Text) != "", len(m.Files) > 0
	alone := request{text: m.Text}
	if hasFiles {
		alone.parts = []Message{m}
	}
	if m.PhotosTotal > 0 {
		return alone, "", nil // The rest of photos sent together: its request was settled with the first.
	}
	set := m.Set != nil && m.Set.Total > 1 && hasFiles && !hasText
	waiting := view.Waiting
	if set {
		if err := b.keep(ctx, r); err != nil { // Before looking, so two photos of a set always see each other.
			return request{}, "", err
		}
		if waiting, err = b.cfg.Store.Waiting(ctx, b.key(r), b.now()); err != nil {
			return request{}, "", err
		}
	}
	if set {
		s := m.Set
		count, first, later := 0, b.now(), false
		for _, p := range waiting {
			if ps := p.Message.Set; ps != nil && ps.ID == s.ID {
				count++
				if p.CreatedAt.Before(first) {
					first = p.CreatedAt
				}
				later = later || ps.Index > s.Index
			}
		}
		switch {
		case later:
			return request{joined: "a later photo of the set"}, "", nil
		case count < s.Total && b.now().Sub(first) < setWait:
			return request{}, "", &HoldError{After: setPoll, Reason: errSetIncomplete}
		}
	}
	waiting = without(waiting, r.ID)
	var waitingText, waitingFiles bool
	for _, p := range waiting {
		waitingText = waitingText || strings.TrimSpace(p.Message.Text) != ""
		waitingFiles = waitingFiles || len(p.Message.Files) > 0
	}
	complete := func(prompt string) (request, string, error) {
		ids := make([]string, 0, len(waiting))
		for _, p := range waiting {
			ids = append(ids, p.RunID)
		}
		if set {
			ids = append(ids, r.ID) // It was kept while the set came; going on, it waits no more.
		}
		took, err := b.cfg.Store.TakePending(ctx, r.ID, ids)
		if err != nil {
			return request{}, "", err
		}
		return merge(without(took, r.ID), m, prompt), "", nil
	}
	switch {
	case hasText && hasFiles:
		if waitingFiles {
			return complete("")
		}
		return alone, "", nil
	case hasFiles && waitingText:
		return complete("")
	case hasText && waitingFiles:
		return complete("")
	case !hasFiles && !hasText:
		return alone, "", nil
	}
	a, err := b.runApp(ctx, r)
	if err != nil {
		if set {
			return complete("")
		}
		return alone, "", nil // The run step discovers the app again and explains the failure.
	}
	if a.Chat {
		if set {
			return complete("") // With the rest of its set.
		}
		return alone, "", nil // A chat app takes any query, and its conversation holds the context.
	}
	if hasFiles {
		prompt := b.appFor(r).ImagePrompt
		if prompt == "" {
			prompt = a.TextDefault
		}
		if prompt != "" || !a.TextRequired {
			alone.text = prompt
			if len(waiting) > 0 || set {
				return complete(prompt) // Photos that waited go with this one.
			}
			return alone, "", nil
		}
		photos := len(m.Files)
		for _, p := range waiting {
			photos += len(p.Message.Files)
		}
		return request{}, askQuestion(b.cfg.Language, photos), b.keep(ctx, r)
	}
	if !a.ImageRequired {
		return alone, "", nil
	}
	return request{}, askPhoto(b.cfg.Language), b.keep(ctx, r)
}

// keep stores r's message as pending.
func (b *Bot) keep(ctx context.Context, r *Run) error {
	now := b.now()
	return b.cfg.Store.AddPending(ctx, Pending{RunID: r.ID, Key: b.key(r), Message: r.Message,
		CreatedAt: now, ExpiresAt: now.Add(b.cfg.PendingTTL)})
}

// merge joins the messages that waited with m: their files first, in order, then m's; the text is m's, else the
// latest text that waited, else prompt.
func merge(took []Pending, m Message, prompt string) request {
	q := request{}
	for _, p := range took {
		q.took = append(q.took, p.RunID)
		if len(p.Message.Files) > 0 {
			q.parts = append(q.parts, p.Message)
		}
		if t := strings.TrimSpace(p.Message.Text); t != "" {
			q.text = p.Message.Text
		}
	}
	if len(m.Files) > 0 {
		q.parts = append(q.parts, m)
	}
	inSetOrder(q.parts)
	if strings.TrimSpace(m.Text) != "" {
		q.text = m.Text
	}
	if q.text == "" {
		q.text = prompt
	}
	return q
}

// inSetOrder puts the photos of each image set in the set's order. Their runs keep them as the queue gets to
// them, in any order, and "oldest first" is that order; each set's photos take the places its photos had.
func inSetOrder(parts []Message) {
	places := map[string][]int{}
	for i, m := range parts {
		if m.Set != nil {
			places[m.Set.ID] = append(places[m.Set.ID], i)
		}
	}
	for _, at := range places {
		set := make([]Message, len(at))
		for j, i := range at {
			set[j] = parts[i]
		}
		slices.SortStableFunc(set, func(a, b Message) int { return cmp.Compare(a.Set.Index, b.Set.Index) })
		for j, i := range at {
			parts[i] = set[j]
		}
	}
}

func without(ps []Pending, runID string) []Pending {
	out := ps[:0:0]
	for _, p := range ps {
		if p.RunID != runID {
			out = append(out, p)
		}
	}
	return out
}

// ExpirePending drops the pending messages whose wait ran out, with a step record on each one's run and no message
// to the person (they were told how long the bot waits). serve calls it periodically.
func (b *Bot) ExpirePending(ctx context.Context) error {
	expired, err := b.cfg.Store.ExpirePending(ctx, b.now())
	if err != nil {
		return fmt.Errorf("bot: expire pending: %w", err)
	}
	for _, p := range expired {
		r, err := b.cfg.Store.Run(ctx, p.RunID)
		if err != nil {
			return fmt.Errorf("bot: expire pending: %w", err)
		}
		log := b.log.With().Str("run_id", r.ID).Str("platform", r.Platform).Int("attempt", r.Attempt).Logger()
		steps := &stepLog{store: b.cfg.Store, metrics: b.cfg.Metrics, log: log, run: &r, names: waitSteps, now: b.now}
		steps.record(ctx, StepPending, b.now(), 0, "expired", nil,
			map[string]any{"waited_s": int(p.ExpiresAt.Sub(p.CreatedAt).Seconds())})
	}
	return nil
}

// askQuestion asks for the text a photo needs; the person's next message (or a tapped choice) is the question.
func askQuestion(lang Lang, photos int) string {
	if isJapanese(lang) {
		if photos > 1 {
			return fmt.Sprintf("写真を%d枚受け取りました。何について知りたいですか？ 質問を送ってください。", photos)
		}
		return "写真を受け取りました。何について知りたいですか？ 質問を送ってください。"
	}
	if photos > 1 {
		return fmt.Sprintf("Got your %d photos. What would you like to know? Send your question.", photos)
	}
	return "Got your photo. What would you like to know? Send your question."
}

// askPhoto asks for the photo a text needs; the person's next photo completes the request.
func askPhoto(lang Lang) string {
	if isJapanese(lang) {
		return "このアシスタントは写真について答えます。写真を送ってください。いただいたメッセージと合わせてお答えします。"
	}
	return "This assistant works on photos. Send a photo, and I'll answer your message about it."
}

// suggestions are the choices offered with the question a photo needs: Dify's suggested questions, at most four.
func (b *Bot) suggestions(ctx context.Context, r *Run) []string {
	a, err := b.runApp(ctx, r)
	if err != nil || len(a.Suggested) == 0 {
		return nil
	}
	return a.Suggested[:min(len(a.Suggested), maxChoices)]
}
