// Package recent provides a bounded set of the keys seen lately.
package recent

import "sync"

// DefaultMax is the bound of a Set whose Max is not set.
const DefaultMax = 4096

// Set remembers the keys added last: at least the last Max/2 of them and at most Max, in two generations, the
// older forgotten whole when the newer fills. The zero value is ready to use. It is safe for concurrent use.
type Set struct {
	Max int

	mu       sync.Mutex
	cur, old map[string]struct{}
}

// Has reports whether key is remembered.
func (s *Set) Has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, in := s.cur[key]
	if !in {
		_, in = s.old[key]
	}
	return in
}

// Add remembers key.
func (s *Set) Add(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	half := s.Max / 2
	if s.Max <= 0 {
		half = DefaultMax / 2
	}
	if _, in := s.cur[key]; in {
		return
	}
	if s.cur == nil || len(s.cur) >= half {
		s.old, s.cur = s.cur, make(map[string]struct{}, half)
	}
	s.cur[key] = struct{}{}
}
