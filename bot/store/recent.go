package store

import "sync"

// recentMax bounds the keys a recentKeys remembers; past it, the older half is forgotten.
const recentMax = 4096

// recentKeys is a bounded set of keys: the current generation and the one before.
type recentKeys struct {
	mu       sync.Mutex
	cur, old map[string]struct{}
}

func (k *recentKeys) has(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, in := k.cur[key]
	if !in {
		_, in = k.old[key]
	}
	return in
}

func (k *recentKeys) add(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur == nil || len(k.cur) >= recentMax/2 {
		k.old, k.cur = k.cur, make(map[string]struct{}, recentMax/2)
	}
	k.cur[key] = struct{}{}
}
