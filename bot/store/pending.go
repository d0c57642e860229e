package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/difybot/difybot/bot"
)

const pendingColumns = `run_id, key, message, created_at, expires_at, taken_by`

// AddPending keeps p waiting for the rest of its request. Adding the same run again changes nothing.
func (s *Store) AddPending(ctx context.Context, p bot.Pending) error {
	msg, err := json.Marshal(p.Message)
	if err != nil {
		return fmt.Errorf("store: add pending %s: %w", p.RunID, err)
	}
	_, err = s.db.exec(ctx, `INSERT INTO pending (`+pendingColumns+`) VALUES (?, ?, ?, ?, ?, '')
		ON CONFLICT (run_id) DO NOTHING`, p.RunID, p.Key, string(msg), nanos(p.CreatedAt), nanos(p.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store: add pending %s: %w", p.RunID, err)
	}
	return nil
}

// Waiting returns key's messages still waiting at now, oldest first.
func (s *Store) Waiting(ctx context.Context, key string, now time.Time) ([]bot.Pending, error) {
	out, err := s.pending(ctx, `WHERE key = ? AND taken_by = '' AND expires_at > ?`, key, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("store: waiting for %s: %w", key, err)
	}
	return out, nil
}

// TakePending gives the waiting messages of runIDs to the run taker, and returns every message taker holds,
// oldest first: a run resumed after a crash gets the same ones again, and a message another run took first is
// left out, so no message completes two requests.
func (s *Store) TakePending(ctx context.Context, taker string, runIDs []string) ([]bot.Pending, error) {
	if len(runIDs) > 0 {
		args := []any{taker}
		for _, id := range runIDs {
			args = append(args, id)
		}
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(runIDs)), ", ")
		if _, err := s.db.exec(ctx, `UPDATE pending SET taken_by = ? WHERE taken_by = '' AND run_id IN (`+marks+`)`, args...); err != nil {
			return nil, fmt.Errorf("store: take pending for %s: %w", taker, err)
		}
	}
	out, err := s.pending(ctx, `WHERE taken_by = ?`, taker)
	if err != nil {
		return nil, fmt.Errorf("store: take pending for %s: %w", taker, err)
	}
	return out, nil
}

// PendingOf reads the records runID holds, its own and key's waiting ones in one statement (bot.ViewPending).
func (s *Store) PendingOf(ctx context.Context, runID, key string, now time.Time) (bot.PendingView, error) {
	rows, err := s.pending(ctx, `WHERE taken_by = ? OR run_id = ? OR (key = ? AND taken_by = '' AND expires_at > ?)`,
		runID, runID, key, nanos(now))
	if err != nil {
		return bot.PendingView{}, fmt.Errorf("store: pending of %s: %w", runID, err)
	}
	return bot.ViewPending(rows, runID, key, now), nil
}

// Pending returns run id's pending record, or bot.ErrNotFound when it never waited.
func (s *Store) Pending(ctx context.Context, runID string) (bot.Pending, error) {
	out, err := s.pending(ctx, `WHERE run_id = ?`, runID)
	if err != nil {
		return bot.Pending{}, fmt.Errorf("store: pending %s: %w", runID, err)
	}
	if len(out) == 0 {
		return bot.Pending{}, fmt.Errorf("store: pending %s: %w", runID, bot.ErrNotFound)
	}
	return out[0], nil
}

// ExpirePending marks the messages whose time ran out before now as expired and returns them.
func (s *Store) ExpirePending(ctx context.Context, now time.Time) ([]bot.Pending, error) {
	var out []bot.Pending
	err := s.db.inTx(ctx, func(tx conn, _ insertJob) error {
		var err error
		if out, err = scanPending(tx.query(ctx, `SELECT `+pendingColumns+` FROM pending
			WHERE taken_by = '' AND expires_at <= ? ORDER BY created_at, run_id`, nanos(now))); err != nil {
			return err
		}
		_, err = tx.exec(ctx, `UPDATE pending SET taken_by = 'expired' WHERE taken_by = '' AND expires_at <= ?`, nanos(now))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: expire pending: %w", err)
	}
	for i := range out {
		out[i].TakenBy = bot.PendingExpired
	}
	return out, nil
}

func (s *Store) pending(ctx context.Context, where string, args ...any) ([]bot.Pending, error) {
	return scanPending(s.db.query(ctx, `SELECT `+pendingColumns+` FROM pending `+where+` ORDER BY created_at, run_id`, args...))
}

func scanPending(rs rows, err error) ([]bot.Pending, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []bot.Pending
	for rs.Next() {
		var (
			p                bot.Pending
			msg              string
			created, expires int64
		)
		if err := rs.Scan(&p.RunID, &p.Key, &msg, &created, &expires, &p.TakenBy); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(msg), &p.Message); err != nil {
			return nil, fmt.Errorf("pending %s message: %w", p.RunID, err)
		}
		p.CreatedAt, p.ExpiresAt = fromNanos(created), fromNanos(expires)
		out = append(out, p)
	}
	return out, rs.Err()
}

// JoinThread remembers that the bot takes part in the thread key (an adapter's name for it). A key this
// process stored lately is not written again: rows are never deleted, and Slack joins a thread twice per
// answer (the placeholder and the reply), which was two writes of every message on PostgreSQL.
func (s *Store) JoinThread(ctx context.Context, key string) error {
	if s.joined.Has(key) {
		return nil
	}
	if _, err := s.db.exec(ctx, `INSERT INTO threads (key, joined_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`,
		key, nanos(time.Now())); err != nil {
		return fmt.Errorf("store: join thread: %w", err)
	}
	s.joined.Add(key)
	return nil
}

// InThread reports whether the bot takes part in the thread key.
func (s *Store) InThread(ctx context.Context, key string) (bool, error) {
	var n int
	if err := s.db.queryRow(ctx, `SELECT COUNT(*) FROM threads WHERE key = ?`, key).Scan(&n); err != nil {
		return false, fmt.Errorf("store: in thread: %w", err)
	}
	return n > 0, nil
}
