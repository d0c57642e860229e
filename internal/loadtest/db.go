package loadtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // The "sqlite" driver, to read what difybot stored.
)

// OpenSQLite opens difybot's SQLite file beside a running difybot.
func OpenSQLite(path string) (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
}

// NewDatabase creates a fresh database on the PostgreSQL server of base and returns its URL and a function
// that drops it.
// Query parameters of base (sslmode, pool_max_conns, …) are kept in the new URL.
func NewDatabase(ctx context.Context, base string) (string, func(), error) {
	admin, err := withoutPoolParams(base)
	if err != nil {
		return "", nil, err
	}
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, err
	}
	defer c.Close(context.Background())
	var b [6]byte
	rand.Read(b[:])
	name := "difyload_" + hex.EncodeToString(b[:])
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

// pgConnect connects to a database difybot uses, for reading what it stored.
func pgConnect(ctx context.Context, dbURL string) (*pgx.Conn, error) {
	u, err := withoutPoolParams(dbURL)
	if err != nil {
		return nil, err
	}
	return pgx.Connect(ctx, u)
}

// withoutPoolParams drops pgxpool's own parameters (pool_max_conns, …), which a plain connection would send
// to the server as settings.
func withoutPoolParams(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// RunStatuses counts difybot's stored runs by status.
func (r *Rig) RunStatuses(ctx context.Context) (map[string]int, error) {
	const q = `SELECT status, count(*) FROM runs GROUP BY status`
	out := map[string]int{}
	if r.Cfg.DatabaseURL != "" {
		c, err := pgConnect(ctx, r.Cfg.DatabaseURL)
		if err != nil {
			return nil, err
		}
		defer c.Close(context.Background())
		rows, err := c.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			var n int
			if err := rows.Scan(&s, &n); err != nil {
				return nil, err
			}
			out[s] = n
		}
		return out, rows.Err()
	}
	db, err := OpenSQLite(filepath.Join(r.Cfg.Dir, "data", "difybot.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// PickupDelays returns, per run, how long it waited in the queue: from being stored to its first
// processing step (the Dify run, or the image fetch).
func (r *Rig) PickupDelays(ctx context.Context) (map[string]int64, error) {
	const q = `SELECT r.event_id, min(s.started_at) - r.created_at FROM runs r JOIN steps s ON s.run_id = r.id
		WHERE s.name IN ('fetch', 'run') GROUP BY r.id, r.event_id, r.created_at`
	out := map[string]int64{}
	scan := func(next func() bool, scan func(...any) error) error {
		for next() {
			var ev string
			var d int64
			if err := scan(&ev, &d); err != nil {
				return err
			}
			out[ev] = d
		}
		return nil
	}
	if r.Cfg.DatabaseURL != "" {
		c, err := pgConnect(ctx, r.Cfg.DatabaseURL)
		if err != nil {
			return nil, err
		}
		defer c.Close(context.Background())
		rows, err := c.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		if err := scan(rows.Next, rows.Scan); err != nil {
			return nil, err
		}
		return out, rows.Err()
	}
	db, err := OpenSQLite(filepath.Join(r.Cfg.Dir, "data", "difybot.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if err := scan(rows.Next, rows.Scan); err != nil {
		return nil, err
	}
	return out, rows.Err()
}

// StoredRun returns the status of the run stored for a platform event, or "" when none is.
func (r *Rig) StoredRun(ctx context.Context, eventID string) (string, int, error) {
	const q = `SELECT status FROM runs WHERE event_id = $1`
	var statuses []string
	if r.Cfg.DatabaseURL != "" {
		c, err := pgConnect(ctx, r.Cfg.DatabaseURL)
		if err != nil {
			return "", 0, err
		}
		defer c.Close(context.Background())
		rows, err := c.Query(ctx, q, eventID)
		if err != nil {
			return "", 0, err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			rows.Scan(&s)
			statuses = append(statuses, s)
		}
	} else {
		db, err := OpenSQLite(filepath.Join(r.Cfg.Dir, "data", "difybot.db"))
		if err != nil {
			return "", 0, err
		}
		defer db.Close()
		rows, err := db.QueryContext(ctx, `SELECT status FROM runs WHERE event_id = ?`, eventID)
		if err != nil {
			return "", 0, err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			rows.Scan(&s)
			statuses = append(statuses, s)
		}
	}
	if len(statuses) == 0 {
		return "", 0, nil
	}
	return statuses[0], len(statuses), nil
}
