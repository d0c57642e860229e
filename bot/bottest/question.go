package bottest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/difybot/difybot/bot"
)

// AddQuestion stores a new question; adding the same id again changes nothing.
func (s *Store) AddQuestion(_ context.Context, q bot.Question) error {
	q, err := roundTrip(q)
	if err != nil {
		return fmt.Errorf("bottest: add question: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.questions == nil {
		s.questions = map[string]bot.Question{}
	}
	if _, ok := s.questions[q.ID]; !ok {
		s.questions[q.ID] = q
	}
	return nil
}

// Question returns a question by id, or an error wrapping bot.ErrNotFound.
func (s *Store) Question(_ context.Context, id string) (bot.Question, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.questions[id]
	if !ok {
		return bot.Question{}, fmt.Errorf("bottest: question %s: %w", id, bot.ErrNotFound)
	}
	return roundTrip(q)
}

// Asking returns the questions of place still asking, and those that stopped asking at or after since, newest first.
func (s *Store) Asking(_ context.Context, place string, since time.Time) ([]bot.Question, error) {
	out, err := s.questionsWhere(func(q bot.Question) bool {
		return q.Place == place && (q.Status == bot.QuestionAsking || !q.UpdatedAt.Before(since))
	})
	slices.SortStableFunc(out, func(a, b bot.Question) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, err
}

// SaveQuestion writes q as the next version, if the stored one is still q.Version.
func (s *Store) SaveQuestion(_ context.Context, q bot.Question) error {
	q.Version++
	q, err := roundTrip(q)
	if err != nil {
		return fmt.Errorf("bottest: save question: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.questions[q.ID]
	if !ok || old.Version != q.Version-1 {
		return fmt.Errorf("bottest: save question %s: %w", q.ID, bot.ErrQuestionMoved)
	}
	s.questions[q.ID] = q
	return nil
}

// DueQuestions returns the questions still asking whose form expired by now.
func (s *Store) DueQuestions(_ context.Context, now time.Time) ([]bot.Question, error) {
	out, err := s.questionsWhere(func(q bot.Question) bool { return q.Status == bot.QuestionAsking && q.Expired(now) })
	slices.SortStableFunc(out, func(a, b bot.Question) int { return a.Form.Expires.Compare(b.Form.Expires) })
	return out, err
}

func (s *Store) questionsWhere(keep func(bot.Question) bool) ([]bot.Question, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bot.Question
	for _, q := range s.questions {
		if keep(q) {
			q, err := roundTrip(q)
			if err != nil {
				return nil, err
			}
			out = append(out, q)
		}
	}
	return out, nil
}
