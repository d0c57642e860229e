package bottest

import (
	"context"
	"maps"
	"strings"
	"sync"
)

// State is a bot.RunState in memory, safe for concurrent use. The zero value is empty and ready.
type State struct {
	mu     sync.Mutex
	m      map[string]string
	refuse string
	sets   int
}

// NewState returns a state holding kv, as a run that has set them before.
func NewState(kv map[string]string) *State { return &State{m: maps.Clone(kv)} }

// Get returns the value of k, "" when unset.
func (s *State) Get(k string) string {
	s.mu.Lock()
	v := s.m[k]
	s.mu.Unlock()
	return v
}

// Set stores v under k, unless Refuse covers k: then it fails with ErrUnavailable and stores nothing.
func (s *State) Set(_ context.Context, k, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != "" && strings.HasPrefix(k, s.refuse) {
		return ErrUnavailable
	}
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[k] = v
	s.sets++
	return nil
}

// Refuse makes Set fail for the keys starting with prefix, as a store that goes down; "" accepts all again.
func (s *State) Refuse(prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = prefix
}

// Sets is how many values Set stored.
func (s *State) Sets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sets
}

// Map returns a copy of what the state holds.
func (s *State) Map() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// Clone returns a new state holding the same values, with no refusal and no sets counted.
func (s *State) Clone() *State { return NewState(s.Map()) }
