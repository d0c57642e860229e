package store

import "context"

// Count runs a COUNT query on s's database, behind the store's own methods, so tests see what is written.
func Count(ctx context.Context, s *Store, query string, args ...any) (int, error) {
	var n int
	err := s.db.queryRow(ctx, query, args...).Scan(&n)
	return n, err
}
