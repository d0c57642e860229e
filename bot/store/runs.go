package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/difybot/difybot/bot"
)

// runColumns is the column list scanRun reads, in its order.
const runColumns = `id, platform, COALESCE(event_id, ''), status, message, created_at, updated_at, finished_at,
	attempt, dify_run_id, dify_task_id, conversation_id, reply, code, diagnosis, held_notified, state,
	posted_attempt, replied_attempt, choices, batch, dify_message_id, app`

// Enqueue stores m as a new run and inserts its job in the same transaction. A message with the same platform
// and event id as a stored run returns that run and dup = true, and queues nothing.
func (s *Store) Enqueue(ctx context.Context, m bot.Message) (bot.Run, bool, error) {
	return s.enqueue(ctx, m, 0)
}

// EnqueueLaned is Enqueue with the first attempt's feedback claimed for the fast lane.
func (s *Store) EnqueueLaned(ctx context.Context, m bot.Message) (bot.Run, bool, error) {
	return s.enqueue(ctx, m, 1)
}

// enqueue stores and queues m with feedbackAttempt (ClaimFeedback's mark) already set.
func (s *Store) enqueue(ctx context.Context, m bot.Message, feedbackAttempt int) (bot.Run, bool, error) {
	if m.Platform == "" {
		return bot.Run{}, false, errors.New("store: enqueue: message has no platform")
	}
	msg, err := json.Marshal(m)
	if err != nil {
		return bot.Run{}, false, fmt.Errorf("store: enqueue: %w", err)
	}
	now := time.Now().UTC()
	r := bot.Run{ID: newRunID(now), Platform: m.Platform, EventID: m.EventID, Status: bot.RunQueued, Message: m,
		CreatedAt: now, UpdatedAt: now, Attempt: 1}
	var eventID any // NULL when there is no event id: UNIQUE lets NULLs repeat.
	if m.EventID != "" {
		eventID = m.EventID
	}
	dup := false
	err = s.db.priority().inTx(ctx, func(tx conn, insert insertJob) error {
		n, err := tx.exec(ctx, `INSERT INTO runs (id, platform, event_id, status, message, created_at, updated_at, attempt, person, feedback_attempt)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (platform, event_id) DO NOTHING`,
			r.ID, r.Platform, eventID, string(r.Status), string(msg), nanos(now), nanos(now), r.Attempt, person(m), feedbackAttempt)
		if err != nil {
			return err
		}
		if n == 0 {
			dup = true
			r, err = scanRun(tx.queryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE platform = ? AND event_id = ?`,
				m.Platform, m.EventID))
			return err
		}
		return insert(ctx, RunArgs{RunID: r.ID, Attempt: r.Attempt})
	})
	if err != nil {
		return bot.Run{}, false, fmt.Errorf("store: enqueue: %w", err)
	}
	s.known.Add(r.ID)
	return r, dup, nil
}

// Run returns a run by id, or bot.ErrNotFound.
func (s *Store) Run(ctx context.Context, id string) (bot.Run, error) {
	r, err := scanRun(s.db.queryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
	if errNoRows(err) {
		return bot.Run{}, fmt.Errorf("store: run %s: %w", id, bot.ErrNotFound)
	}
	if err != nil {
		return bot.Run{}, fmt.Errorf("store: run %s: %w", id, err)
	}
	s.known.Add(id)
	return r, nil
}

// SaveRun writes the run's mutable fields and stamps UpdatedAt. The message, creation time and attempt
// are not changed: they belong to Enqueue and Requeue. State keys are merged in, never dropped: another party
// (the fast lane's placeholder) may have set one this copy of the run has not seen.
func (s *Store) SaveRun(ctx context.Context, r bot.Run) error {
	save, err := s.saveStmt(r)
	if err != nil {
		return fmt.Errorf("store: save run %s: %w", r.ID, err)
	}
	n, err := s.withLogs(ctx, r.ID, save) // The run's held log rows go with it.
	if err != nil {
		return fmt.Errorf("store: save run %s: %w", r.ID, err)
	}
	if n == 0 {
		if _, err := s.Run(ctx, r.ID); err != nil {
			return fmt.Errorf("store: save run %s: %w", r.ID, err)
		}
		return fmt.Errorf("store: save run %s attempt %d: %w", r.ID, r.Attempt, bot.ErrStaleAttempt)
	}
	return nil
}

// saveStmt is the UPDATE that SaveRun (and Admit, for the run it admits) writes r with.
func (s *Store) saveStmt(r bot.Run) (stmt, error) {
	var diag string
	if r.Diagnosis != nil {
		b, err := json.Marshal(r.Diagnosis)
		if err != nil {
			return stmt{}, err
		}
		diag = string(b)
	}
	state, err := jsonObject(r.State)
	if err != nil {
		return stmt{}, err
	}
	if state == "" {
		state = "{}"
	}
	choices, err := jsonOrEmpty(r.Choices, len(r.Choices) > 0)
	if err != nil {
		return stmt{}, err
	}
	batch, err := jsonOrEmpty(r.Batch, r.Batch != nil)
	if err != nil {
		return stmt{}, err
	}
	held := 0
	if r.HeldNotified {
		held = 1
	}
	return stmt{`UPDATE runs SET status = ?, updated_at = ?, finished_at = ?, dify_run_id = ?,
		dify_task_id = ?, conversation_id = ?, reply = ?, code = ?, diagnosis = ?, held_notified = ?, state = ` + s.d.mergeState + `,
		posted_attempt = ?, replied_attempt = ?, choices = ?, batch = ?, dify_message_id = ?, app = ? WHERE id = ? AND attempt = ?`,
		[]any{string(r.Status), nanos(time.Now()), nanos(r.FinishedAt), r.DifyRunID, r.DifyTaskID, r.ConversationID,
			r.Reply, string(r.Code), diag, held, state, r.PostedAttempt, r.RepliedAttempt, choices, batch, r.DifyMessageID, r.App, r.ID, r.Attempt}}, nil
}

// Requeue queues a finished run again as a fresh attempt. The message, the conversation and the adapter
// state stay (adapters keep per-attempt keys there and may edit the same reply); the outcome is cleared.
// A run that is not finished returns ErrNotFinished: a second job would run it twice at once. A run no longer
// at attempt (when attempt is not 0) returns bot.ErrStaleAttempt: that attempt was retried already. The check
// and the change are one statement, so of two replicas given the same Retry, one requeues.
func (s *Store) Requeue(ctx context.Context, id string, attempt int) error {
	err := s.db.inTx(ctx, func(tx conn, insert insertJob) error {
		var next int
		err := tx.queryRow(ctx, `UPDATE runs SET attempt = attempt + 1, status = ?, updated_at = ?, finished_at = 0,
			dify_run_id = '', dify_task_id = '', dify_message_id = '', reply = '', code = '', diagnosis = '', held_notified = 0
			WHERE id = ? AND status IN (?, ?) AND (? = 0 OR attempt = ?) RETURNING attempt`,
			string(bot.RunQueued), nanos(time.Now()), id, string(bot.RunSucceeded), string(bot.RunFailed), attempt, attempt).Scan(&next)
		if errNoRows(err) {
			var status string
			var at int
			err := tx.queryRow(ctx, `SELECT status, attempt FROM runs WHERE id = ?`, id).Scan(&status, &at)
			if errNoRows(err) {
				return bot.ErrNotFound
			}
			if err != nil {
				return err
			}
			if attempt != 0 && at != attempt {
				return fmt.Errorf("%w: attempt %d was retried, the run is at attempt %d", bot.ErrStaleAttempt, attempt, at)
			}
			return fmt.Errorf("%w: it is %s", ErrNotFinished, status)
		}
		if err != nil {
			return err
		}
		return insert(ctx, RunArgs{RunID: id, Attempt: next})
	})
	if err != nil {
		return fmt.Errorf("store: requeue %s: %w", id, err)
	}
	return nil
}

// ListRuns returns runs newest first, filtered by f.
func (s *Store) ListRuns(ctx context.Context, f bot.RunFilter) ([]bot.Run, error) {
	var where []string
	var args []any
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.Platform != "" {
		where, args = append(where, "platform = ?"), append(args, f.Platform)
	}
	if f.Code != "" {
		where, args = append(where, "code = ?"), append(args, string(f.Code))
	}
	if f.App != "" {
		where, args = append(where, "app = ?"), append(args, f.App)
	}
	if !f.Before.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, nanos(f.Before))
	}
	q := `SELECT ` + runColumns + ` FROM runs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, clampLimit(f.Limit))
	rows, err := s.db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	defer rows.Close()
	var out []bot.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	return out, nil
}

// clampLimit applies the admin list's default of 50 and ceiling of 500.
func clampLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 500:
		return 500
	}
	return n
}

func scanRun(sc row) (bot.Run, error) {
	var (
		r                                bot.Run
		status, msg, code, diag, state   string
		choices, batch                   string
		created, updated, finished, held int64
	)
	err := sc.Scan(&r.ID, &r.Platform, &r.EventID, &status, &msg, &created, &updated, &finished, &r.Attempt,
		&r.DifyRunID, &r.DifyTaskID, &r.ConversationID, &r.Reply, &code, &diag, &held, &state, &r.PostedAttempt, &r.RepliedAttempt, &choices, &batch, &r.DifyMessageID, &r.App)
	if err != nil {
		return bot.Run{}, err
	}
	r.Status, r.Code, r.HeldNotified = bot.RunStatus(status), bot.Code(code), held != 0
	r.CreatedAt, r.UpdatedAt, r.FinishedAt = fromNanos(created), fromNanos(updated), fromNanos(finished)
	if err := json.Unmarshal([]byte(msg), &r.Message); err != nil {
		return bot.Run{}, fmt.Errorf("run %s message: %w", r.ID, err)
	}
	if choices != "" {
		if err := json.Unmarshal([]byte(choices), &r.Choices); err != nil {
			return bot.Run{}, fmt.Errorf("run %s choices: %w", r.ID, err)
		}
	}
	if batch != "" {
		if err := json.Unmarshal([]byte(batch), &r.Batch); err != nil {
			return bot.Run{}, fmt.Errorf("run %s batch: %w", r.ID, err)
		}
	}
	if diag != "" {
		r.Diagnosis = new(bot.Diagnosis)
		if err := json.Unmarshal([]byte(diag), r.Diagnosis); err != nil {
			return bot.Run{}, fmt.Errorf("run %s diagnosis: %w", r.ID, err)
		}
	}
	if state != "" {
		if err := json.Unmarshal([]byte(state), &r.State); err != nil {
			return bot.Run{}, fmt.Errorf("run %s state: %w", r.ID, err)
		}
		// Runs stored before migration 2 kept these flags in the state; a run in flight across the upgrade keeps them.
		for k, field := range map[string]*int{"posted:": &r.PostedAttempt, "replied:": &r.RepliedAttempt} {
			if r.State[k+strconv.Itoa(r.Attempt)] != "" {
				*field = r.Attempt
			}
		}
	}
	return r, nil
}

// AddStep holds one step record for the run's next save, or the store's flush (holdLogs, stepbuf.go).
func (s *Store) AddStep(ctx context.Context, st bot.Step) error {
	fields, err := jsonObject(st.Fields)
	if err != nil {
		return fmt.Errorf("store: add step: %w", err)
	}
	r := stepRow{st.RunID, st.Attempt, st.N, st.Of, st.Name, st.Status, nanos(st.Start), int64(st.Duration),
		string(st.Code), st.Error, fields}
	if err := s.holdLogs(ctx, st.RunID, heldLogs{steps: []stepRow{r}}); err != nil {
		return fmt.Errorf("store: add step for run %s: %w", st.RunID, err)
	}
	return nil
}

// Steps returns a run's steps of every attempt in the order they were stored.
// Fields come back as JSON decodes them: numbers are float64.
func (s *Store) Steps(ctx context.Context, runID string) ([]bot.Step, error) {
	if err := s.flushLogs(ctx, runID); err != nil { // So a reader sees every step recorded.
		return nil, fmt.Errorf("store: steps of %s: %w", runID, err)
	}
	rows, err := s.db.query(ctx, `SELECT run_id, attempt, n, total, name, status, started_at, duration_ns, code,
		error, fields FROM steps WHERE run_id = ? ORDER BY seq`, runID)
	if err != nil {
		return nil, fmt.Errorf("store: steps of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []bot.Step
	for rows.Next() {
		var (
			st           bot.Step
			start, dur   int64
			code, fields string
		)
		if err := rows.Scan(&st.RunID, &st.Attempt, &st.N, &st.Of, &st.Name, &st.Status, &start, &dur, &code,
			&st.Error, &fields); err != nil {
			return nil, fmt.Errorf("store: steps of %s: %w", runID, err)
		}
		st.Start, st.Duration, st.Code = fromNanos(start), time.Duration(dur), bot.Code(code)
		if fields != "" {
			if err := json.Unmarshal([]byte(fields), &st.Fields); err != nil {
				return nil, fmt.Errorf("store: steps of %s: %w", runID, err)
			}
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: steps of %s: %w", runID, err)
	}
	return out, nil
}

// AddNodeEvents holds workflow node events for the run's next save, or the store's flush (holdLogs, stepbuf.go).
func (s *Store) AddNodeEvents(ctx context.Context, events ...bot.NodeEvent) error {
	byRun := map[string][]nodeRow{}
	for _, e := range events {
		byRun[e.RunID] = append(byRun[e.RunID], nodeRow{e.RunID, e.Seq, e.Event, e.NodeID, e.NodeType, e.Title, e.Index, e.Status, e.Elapsed, e.Error, nanos(e.At)})
	}
	for id, rows := range byRun {
		if err := s.holdLogs(ctx, id, heldLogs{nodes: rows}); err != nil {
			return fmt.Errorf("store: add node events for run %s: %w", id, err)
		}
	}
	return nil
}

// NodeEvents returns a run's node events in the order they were stored.
func (s *Store) NodeEvents(ctx context.Context, runID string) ([]bot.NodeEvent, error) {
	if err := s.flushLogs(ctx, runID); err != nil {
		return nil, fmt.Errorf("store: node events of %s: %w", runID, err)
	}
	rows, err := s.db.query(ctx, `SELECT run_id, seq, event, node_id, node_type, title, node_index, status,
		elapsed_s, error, happened_at FROM node_events WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("store: node events of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []bot.NodeEvent
	for rows.Next() {
		var (
			e  bot.NodeEvent
			at int64
		)
		if err := rows.Scan(&e.RunID, &e.Seq, &e.Event, &e.NodeID, &e.NodeType, &e.Title, &e.Index, &e.Status,
			&e.Elapsed, &e.Error, &at); err != nil {
			return nil, fmt.Errorf("store: node events of %s: %w", runID, err)
		}
		e.At = fromNanos(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: node events of %s: %w", runID, err)
	}
	return out, nil
}

// Conversation returns the Dify conversation id for key, or "" when there is none yet.
func (s *Store) Conversation(ctx context.Context, key string) (string, error) {
	var id string
	err := s.db.queryRow(ctx, `SELECT conversation_id FROM conversations WHERE key = ?`, key).Scan(&id)
	if errNoRows(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: conversation %s: %w", key, err)
	}
	return id, nil
}

// SetConversation stores the Dify conversation id for key.
func (s *Store) SetConversation(ctx context.Context, key, conversationID string) error {
	_, err := s.db.exec(ctx, `INSERT INTO conversations (key, conversation_id, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET conversation_id = excluded.conversation_id, updated_at = excluded.updated_at`,
		key, conversationID, nanos(time.Now()))
	if err != nil {
		return fmt.Errorf("store: set conversation %s: %w", key, err)
	}
	return nil
}

// BreakerSetting returns the override in force: mode auto when none was ever set.
func (s *Store) BreakerSetting(ctx context.Context) (bot.BreakerSetting, error) {
	var (
		b  bot.BreakerSetting
		at int64
	)
	err := s.db.queryRow(ctx, `SELECT mode, reason, actor, set_at FROM breaker_settings WHERE id = 1`).
		Scan(&b.Mode, &b.Reason, &b.Actor, &at)
	if errNoRows(err) {
		return bot.BreakerSetting{Mode: "auto"}, nil
	}
	if err != nil {
		return bot.BreakerSetting{}, fmt.Errorf("store: breaker setting: %w", err)
	}
	b.At = fromNanos(at)
	return b, nil
}

// SetBreakerSetting stores the override and its audit row in one transaction. A zero At means now.
func (s *Store) SetBreakerSetting(ctx context.Context, b bot.BreakerSetting) error {
	switch b.Mode {
	case "auto", "open", "closed":
	default:
		return fmt.Errorf("store: breaker mode %q: want auto, open or closed", b.Mode)
	}
	if b.At.IsZero() {
		b.At = time.Now()
	}
	err := s.db.inTx(ctx, func(tx conn, _ insertJob) error {
		if b.Host != "" {
			if _, err := tx.exec(ctx, `INSERT INTO breaker_host_settings (host, mode, reason, actor, set_at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (host) DO UPDATE SET mode = excluded.mode, reason = excluded.reason, actor = excluded.actor,
				set_at = excluded.set_at`, b.Host, b.Mode, b.Reason, b.Actor, nanos(b.At)); err != nil {
				return err
			}
		} else {
			if _, err := tx.exec(ctx, `INSERT INTO breaker_settings (id, mode, reason, actor, set_at) VALUES (1, ?, ?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, reason = excluded.reason, actor = excluded.actor,
				set_at = excluded.set_at`, b.Mode, b.Reason, b.Actor, nanos(b.At)); err != nil {
				return err
			}
			// A change for all hosts replaces each host's own.
			if _, err := tx.exec(ctx, `DELETE FROM breaker_host_settings`); err != nil {
				return err
			}
		}
		_, err := tx.exec(ctx, `INSERT INTO breaker_audit (mode, reason, actor, set_at, host) VALUES (?, ?, ?, ?, ?)`,
			b.Mode, b.Reason, b.Actor, nanos(b.At), b.Host)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set breaker setting: %w", err)
	}
	return nil
}

// HostBreakerSettings returns the overrides of single Dify hosts, by host, which win over BreakerSetting's.
func (s *Store) HostBreakerSettings(ctx context.Context) (map[string]bot.BreakerSetting, error) {
	rows, err := s.db.query(ctx, `SELECT host, mode, reason, actor, set_at FROM breaker_host_settings`)
	if err != nil {
		return nil, fmt.Errorf("store: host breaker settings: %w", err)
	}
	defer rows.Close()
	out := map[string]bot.BreakerSetting{}
	for rows.Next() {
		var (
			b  bot.BreakerSetting
			at int64
		)
		if err := rows.Scan(&b.Host, &b.Mode, &b.Reason, &b.Actor, &at); err != nil {
			return nil, fmt.Errorf("store: host breaker settings: %w", err)
		}
		b.At = fromNanos(at)
		out[b.Host] = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: host breaker settings: %w", err)
	}
	return out, nil
}

// BreakerHistory returns the latest audit rows, newest first (by when they were stored).
func (s *Store) BreakerHistory(ctx context.Context, limit int) ([]bot.BreakerSetting, error) {
	rows, err := s.db.query(ctx, `SELECT mode, reason, actor, set_at, host FROM breaker_audit ORDER BY id DESC LIMIT ?`,
		clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: breaker history: %w", err)
	}
	defer rows.Close()
	var out []bot.BreakerSetting
	for rows.Next() {
		var (
			b  bot.BreakerSetting
			at int64
		)
		if err := rows.Scan(&b.Mode, &b.Reason, &b.Actor, &at, &b.Host); err != nil {
			return nil, fmt.Errorf("store: breaker history: %w", err)
		}
		b.At = fromNanos(at)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: breaker history: %w", err)
	}
	return out, nil
}

// jsonObject encodes a map for a TEXT column, "" when it is empty.
func jsonObject[M ~map[string]V, V any](m M) (string, error) {
	if len(m) == 0 {
		return "", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// jsonOrEmpty encodes v as JSON when set, else gives "" (the column's default).
func jsonOrEmpty(v any, set bool) (string, error) {
	if !set {
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// nanos is how times are stored: Unix nanoseconds, 0 for the zero time.
// QueueStats reports the runs waiting for an answer (queued, held or running) and the age of the oldest, for
// the metrics. It reads our runs table, which both back ends share, rather than River's.
func (s *Store) QueueStats(ctx context.Context) (int, time.Duration, error) {
	var n int
	var oldest sql.NullInt64
	err := s.db.queryRow(ctx, `SELECT count(*), min(created_at) FROM runs WHERE status IN ('queued', 'held', 'running')`).Scan(&n, &oldest)
	if err != nil {
		return 0, 0, fmt.Errorf("store: queue stats: %w", err)
	}
	if n == 0 || !oldest.Valid {
		return n, 0, nil
	}
	return n, time.Since(time.Unix(0, oldest.Int64)), nil
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// crockford is the ULID alphabet, lower-cased; it is in ASCII order, so ids sort as their numbers do.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// newRunID returns "r_" and a ULID: 48 bits of milliseconds then 80 random bits, so ids sort by time.
func newRunID(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails.
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return "r_" + string(out[:])
}

// SetState sets one key of the run's adapter state, if the run is still at attempt (else bot.ErrStaleAttempt).
// It writes nothing else, so a party holding an older copy of the run (the fast lane) cannot undo the worker's.
func (s *Store) SetState(ctx context.Context, runID string, attempt int, kv map[string]string) error {
	patch, err := json.Marshal(kv)
	if err != nil {
		return fmt.Errorf("store: set state of run %s: %w", runID, err)
	}
	n, err := s.db.priority().exec(ctx, `UPDATE runs SET state = `+s.d.mergeState+` WHERE id = ? AND attempt = ?`, string(patch), runID, attempt)
	if err != nil {
		return fmt.Errorf("store: set state of run %s: %w", runID, err)
	}
	if n == 0 {
		return fmt.Errorf("store: set state of run %s attempt %d: %w", runID, attempt, bot.ErrStaleAttempt)
	}
	return nil
}

// ClaimFeedback reports whether the caller is the first to take on the attempt's first feedback.
func (s *Store) ClaimFeedback(ctx context.Context, runID string, attempt int) (bool, error) {
	n, err := s.db.priority().exec(ctx, `UPDATE runs SET feedback_attempt = ? WHERE id = ? AND attempt = ? AND feedback_attempt < ?`,
		attempt, runID, attempt, attempt)
	if err != nil {
		return false, fmt.Errorf("store: claim feedback of run %s: %w", runID, err)
	}
	return n == 1, nil
}
