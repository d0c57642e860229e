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

// Admit decides and saves in one transaction, so two replicas starting one person's runs at once cannot both
// take the last slot: SQLite's transactions are serial, and on PostgreSQL the person's advisory lock orders them.
// A run left running longer than RescueAfter belongs to a process that died and is not counted.
func (s *Store) Admit(ctx context.Context, r bot.Run, share bot.Share, now time.Time) (bot.Admission, error) {
	r.Status = bot.RunRunning
	who := person(r.Message) // As Enqueue stored it.
	if who == "" || share.Runs <= 0 && share.PerMinute <= 0 {
		return bot.Admission{OK: true}, s.SaveRun(ctx, r) // Nothing to count: no transaction.
	}
	save, err := s.saveStmt(r)
	if err != nil {
		return bot.Admission{}, fmt.Errorf("store: admit run %s: %w", r.ID, err)
	}
	var a bot.Admission
	err = s.db.inTx(ctx, func(tx conn, _ insertJob) error {
		if l, ok := s.db.(personLocker); ok {
			if err := l.lockPerson(ctx, tx, who); err != nil {
				return err
			}
		}
		since, alive, created := nanos(now.Add(-time.Minute)), nanos(now.Add(-s.cfg.RescueAfter)), nanos(r.CreatedAt)
		var oldest int64
		err := tx.queryRow(ctx, `SELECT
				COALESCE(SUM(CASE WHEN status = ? AND updated_at >= ? THEN 1 ELSE 0 END), 0),
				COALESCE(SUM(CASE WHEN created_at >= ? AND created_at < ? THEN 1 ELSE 0 END), 0),
				COALESCE(MIN(CASE WHEN created_at >= ? AND created_at < ? THEN created_at END), 0)
			FROM runs WHERE person = ? AND id <> ? AND (status = ? OR created_at >= ?)`,
			string(bot.RunRunning), alive, since, created, since, created, who, r.ID, string(bot.RunRunning), since).
			Scan(&a.Running, &a.Recent, &oldest)
		if err != nil {
			return err
		}
		switch {
		case share.PerMinute > 0 && a.Recent >= share.PerMinute:
			a.Reason, a.RetryAt = "rate", fromNanos(oldest).Add(time.Minute)
			return nil
		case share.Runs > 0 && a.Running >= share.Runs:
			a.Reason = "runs"
			return nil
		}
		a.OK = true
		n, err := tx.exec(ctx, save.query, save.args...)
		if err == nil && n == 0 {
			return bot.ErrStaleAttempt
		}
		return err
	})
	if err != nil {
		return bot.Admission{}, fmt.Errorf("store: admit run %s: %w", r.ID, err)
	}
	return a, nil
}

// personLocker is a back end whose transactions need an explicit lock to be serial for one person.
type personLocker interface {
	lockPerson(ctx context.Context, tx conn, person string) error
}

// lockPerson takes a transaction-scoped advisory lock on the person's name.
func (b *pgBackend) lockPerson(ctx context.Context, tx conn, person string) error {
	_, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, person)
	return err
}
