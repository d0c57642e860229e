package bottest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/difybot/difybot/bot"
)

// AddPending keeps p waiting; adding the same run again changes nothing.
func (s *Store) AddPending(_ context.Context, p bot.Pending) error {
	p, err := roundTrip(p)
	if err != nil {
		return fmt.Errorf("bottest: add pending: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = map[string]bot.Pending{}
	}
	if _, ok := s.pending[p.RunID]; !ok {
		p.TakenBy = ""
		s.pending[p.RunID] = p
	}
	return nil
}

// Waiting returns key's messages still waiting at now, oldest first.
func (s *Store) Waiting(_ context.Context, key string, now time.Time) ([]bot.Pending, error) {
	return s.pendingWhere(func(p bot.Pending) bool { return p.Key == key && p.TakenBy == "" && p.ExpiresAt.After(now) })
}

// TakePending gives the waiting messages of runIDs to taker and returns every message taker holds.
func (s *Store) TakePending(_ context.Context, taker string, runIDs []string) ([]bot.Pending, error) {
	s.mu.Lock()
	for _, id := range runIDs {
		if p, ok := s.pending[id]; ok && p.TakenBy == "" {
			p.TakenBy = taker
			s.pending[id] = p
		}
	}
	s.mu.Unlock()
	return s.pendingWhere(func(p bot.Pending) bool { return p.TakenBy == taker })
}

// PendingOf returns what runID holds, its own record and key's waiting messages, as bot.ViewPending splits them.
func (s *Store) PendingOf(_ context.Context, runID, key string, now time.Time) (bot.PendingView, error) {
	rows, err := s.pendingWhere(func(p bot.Pending) bool {
		return p.TakenBy == runID || p.RunID == runID || p.Key == key && p.TakenBy == "" && p.ExpiresAt.After(now)
	})
	if err != nil {
		return bot.PendingView{}, err
	}
	return bot.ViewPending(rows, runID, key, now), nil
}

// Pending returns run id's pending record, or an error wrapping bot.ErrNotFound.
func (s *Store) Pending(_ context.Context, runID string) (bot.Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[runID]
	if !ok {
		return bot.Pending{}, fmt.Errorf("bottest: pending %s: %w", runID, bot.ErrNotFound)
	}
	return roundTrip(p)
}

// ExpirePending marks the messages whose wait ran out by now as expired and returns them.
func (s *Store) ExpirePending(_ context.Context, now time.Time) ([]bot.Pending, error) {
	out, err := s.pendingWhere(func(p bot.Pending) bool { return p.TakenBy == "" && !p.ExpiresAt.After(now) })
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range out {
		p.TakenBy = bot.PendingExpired
		s.pending[p.RunID], out[i] = p, p
	}
	return out, nil
}

func (s *Store) pendingWhere(keep func(bot.Pending) bool) ([]bot.Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bot.Pending
	for _, p := range s.pending {
		if keep(p) {
			c, err := roundTrip(p)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b bot.Pending) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp(a.RunID, b.RunID)
	})
	return out, nil
}

func cmp(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
