package store

import (
	"context"
	"fmt"
	"time"

	"github.com/difybot/difybot/bot"
)

var _ bot.Admitter = (*Store)(nil)

// person names whose message m is, for their fair share; "" (no user) is never limited.
func person(m bot.Message) string {
	if m.UserID == "" {
		return ""
	}
	return m.Platform + ":" + m.UserID
}

// Admit decides and saves in one statement, so two replicas starting one person's runs at once cannot both
// take the last slot: the save's WHERE counts the person's other runs. SQLite's writes are serial; on
// PostgreSQL the person's advisory lock goes first in the same round trip and implicit transaction, so the
// count is taken after it. A run left running longer than RescueAfter belongs to a process that died and is
// not counted. Only a held run reads the counts again, for the reason it gives.
func (s *Store) Admit(ctx context.Context, r bot.Run, share bot.Share, now time.Time) (bot.Admission, error) {
	r.Status = bot.RunRunning
	who := person(r.Message) // As Enqueue stored it.
	if who == "" || share.Runs <= 0 && share.PerMinute <= 0 {
		return bot.Admission{OK: true}, s.SaveRun(ctx, r) // Nothing to count.
	}
	save, err := s.saveStmt(r)
	if err != nil {
		return bot.Admission{}, fmt.Errorf("store: admit run %s: %w", r.ID, err)
	}
	since, alive, created := nanos(now.Add(-time.Minute)), nanos(now.Add(-s.cfg.RescueAfter)), nanos(r.CreatedAt)
	if share.Runs > 0 {
		save.query += ` AND (SELECT COUNT(*) FROM runs WHERE person = ? AND id <> ? AND status = ? AND updated_at >= ?) < ?`
		save.args = append(save.args, who, r.ID, string(bot.RunRunning), alive, share.Runs)
	}
	if share.PerMinute > 0 {
		save.query += ` AND (SELECT COUNT(*) FROM runs WHERE person = ? AND id <> ? AND created_at >= ? AND created_at < ?) < ?`
		save.args = append(save.args, who, r.ID, since, created, share.PerMinute)
	}
	stmts := []stmt{save}
	if l, ok := s.db.(personLocker); ok {
		stmts = []stmt{l.lockPerson(who), save}
	}
	n, err := s.withLogs(ctx, r.ID, stmts...)
	if err != nil {
		return bot.Admission{}, fmt.Errorf("store: admit run %s: %w", r.ID, err)
	}
	if n == 1 {
		return bot.Admission{OK: true}, nil
	}
	// Held, or a Retry replaced this attempt: read which, and the counts the person hears of.
	var a bot.Admission
	var attempt int
	var oldest int64
	err = s.db.queryRow(ctx, `SELECT
			COALESCE(SUM(CASE WHEN status = ? AND updated_at >= ? THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN created_at >= ? AND created_at < ? THEN 1 ELSE 0 END), 0),
			COALESCE(MIN(CASE WHEN created_at >= ? AND created_at < ? THEN created_at END), 0),
			COALESCE((SELECT attempt FROM runs WHERE id = ?), 0)
		FROM runs WHERE person = ? AND id <> ? AND (status = ? OR created_at >= ?)`,
		string(bot.RunRunning), alive, since, created, since, created, r.ID, who, r.ID, string(bot.RunRunning), since).
		Scan(&a.Running, &a.Recent, &oldest, &attempt)
	switch {
	case err != nil:
		return bot.Admission{}, fmt.Errorf("store: admit run %s: %w", r.ID, err)
	case attempt != r.Attempt:
		return bot.Admission{}, fmt.Errorf("store: admit run %s attempt %d: %w", r.ID, r.Attempt, bot.ErrStaleAttempt)
	case share.PerMinute > 0 && a.Recent >= share.PerMinute:
		a.Reason, a.RetryAt = "rate", fromNanos(oldest).Add(time.Minute)
	default:
		a.Reason = "runs" // Or a slot freed since the save looked: the run looks again soon (shareRunsPoll).
	}
	return a, nil
}

// personLocker is a back end whose statements need an explicit lock to be serial for one person.
type personLocker interface {
	lockPerson(person string) stmt
}

// lockPerson takes a transaction-scoped advisory lock on the person's name.
func (b *pgBackend) lockPerson(person string) stmt {
	return stmt{`SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, []any{person}}
}
