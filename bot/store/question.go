package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/difybot/difybot/bot"
)

// AddQuestion stores a new question; adding the same id again changes nothing.
func (s *Store) AddQuestion(ctx context.Context, q bot.Question) error {
	body, err := json.Marshal(q)
	if err != nil {
		return fmt.Errorf("store: add question %s: %w", q.ID, err)
	}
	_, err = s.db.exec(ctx, `INSERT INTO questions (id, run_id, place, status, expires_at, version, body, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		q.ID, q.RunID, q.Place, string(q.Status), nanos(q.Form.Expires), q.Version, string(body), nanos(q.CreatedAt), nanos(q.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: add question %s: %w", q.ID, err)
	}
	return nil
}

// Question returns a question by id, or an error wrapping bot.ErrNotFound.
func (s *Store) Question(ctx context.Context, id string) (bot.Question, error) {
	out, err := s.questions(ctx, `WHERE id = ?`, id)
	if err != nil {
		return bot.Question{}, fmt.Errorf("store: question %s: %w", id, err)
	}
	if len(out) == 0 {
		return bot.Question{}, fmt.Errorf("store: question %s: %w", id, bot.ErrNotFound)
	}
	return out[0], nil
}

// Asking returns the questions of place still asking, and those that stopped asking at or after since, newest first.
func (s *Store) Asking(ctx context.Context, place string, since time.Time) ([]bot.Question, error) {
	out, err := s.questions(ctx, `WHERE place = ? AND (status = 'asking' OR updated_at >= ?) ORDER BY created_at DESC, id`, place, nanos(since))
	if err != nil {
		return nil, fmt.Errorf("store: questions asking in %s: %w", place, err)
	}
	return out, nil
}

// SaveQuestion writes q as the next version, if the stored one is still q.Version.
func (s *Store) SaveQuestion(ctx context.Context, q bot.Question) error {
	prev := q.Version
	q.Version++
	body, err := json.Marshal(q)
	if err != nil {
		return fmt.Errorf("store: save question %s: %w", q.ID, err)
	}
	n, err := s.db.exec(ctx, `UPDATE questions SET status = ?, version = ?, body = ?, updated_at = ? WHERE id = ? AND version = ?`,
		string(q.Status), q.Version, string(body), nanos(q.UpdatedAt), q.ID, prev)
	switch {
	case err != nil:
		return fmt.Errorf("store: save question %s: %w", q.ID, err)
	case n == 0:
		return fmt.Errorf("store: save question %s: %w", q.ID, bot.ErrQuestionMoved)
	}
	return nil
}

// DueQuestions returns the questions still asking whose form expired by now.
func (s *Store) DueQuestions(ctx context.Context, now time.Time) ([]bot.Question, error) {
	out, err := s.questions(ctx, `WHERE status = 'asking' AND expires_at > 0 AND expires_at <= ? ORDER BY expires_at, id`, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("store: due questions: %w", err)
	}
	return out, nil
}

func (s *Store) questions(ctx context.Context, where string, args ...any) ([]bot.Question, error) {
	rs, err := s.db.query(ctx, `SELECT body FROM questions `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []bot.Question
	for rs.Next() {
		var body string
		var q bot.Question
		if err := rs.Scan(&body); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(body), &q); err != nil {
			return nil, fmt.Errorf("question body: %w", err)
		}
		out = append(out, q)
	}
	return out, rs.Err()
}
