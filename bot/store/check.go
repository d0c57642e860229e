package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
)

// Check tells whether the store cfg names can be used, creating and changing nothing: it is doctor's check,
// which may run anywhere, in any directory. A SQLite file that does not exist yet is fine (Open creates it) when
// its nearest existing parent is a directory; an existing one is opened read-only. PostgreSQL is connected to
// and asked for its schema version. It returns what it found, for a person.
func Check(ctx context.Context, cfg Config) (string, error) {
	if cfg.DatabaseURL != "" {
		return checkPostgres(ctx, cfg.DatabaseURL)
	}
	if cfg.SQLitePath == "" {
		return "", errors.New("store: DatabaseURL or SQLitePath is required")
	}
	path := cfg.SQLitePath
	st, err := os.Stat(path)
	if err != nil {
		// The nearest parent that exists must be a directory for Open to create the file under it.
		for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
			if d, err := os.Stat(dir); err == nil {
				if !d.IsDir() {
					return "", fmt.Errorf("%s is a file, so the database cannot be created under it", dir)
				}
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
		if errors.Is(err, fs.ErrNotExist) {
			return path + " does not exist yet; serve creates it", nil
		}
	}
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return "", fmt.Errorf("%s is a directory, not a database file", path)
	}
	// Read-only opening of a WAL database creates its -wal and -shm files when they are missing; immutable reads
	// the file alone. While serve runs they exist, and mode=ro reads through them without creating anything.
	query := "immutable=1"
	if _, err := os.Stat(path + "-wal"); err == nil {
		query = "mode=ro&_pragma=busy_timeout(5000)"
	}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Opaque: path, RawQuery: query}).String())
	if err != nil {
		return "", err
	}
	defer db.Close()
	v, err := schemaVersion(db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM difybot_migrations`))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return path + " readable, " + v, nil
}

func checkPostgres(ctx context.Context, dsn string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('difybot_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return "", fmt.Errorf("query: %w", err)
	}
	if !exists {
		return "PostgreSQL (DATABASE_URL) reachable, not migrated yet; serve migrates it", nil
	}
	v, err := schemaVersion(conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM difybot_migrations`))
	if err != nil {
		return "", err
	}
	return "PostgreSQL (DATABASE_URL) reachable, " + v, nil
}

// schemaVersion describes the stored schema against this binary's.
func schemaVersion(row interface{ Scan(...any) error }) (string, error) {
	var v int
	if err := row.Scan(&v); err != nil {
		return "", err
	}
	latest := len(migrations) - 1
	switch {
	case v == latest:
		return fmt.Sprintf("schema version %d (current)", v), nil
	case v < latest:
		return fmt.Sprintf("schema version %d of %d; serve applies the rest at start", v, latest), nil
	}
	return "", fmt.Errorf("schema version %d is newer than this difybot's %d: it was written by a later difybot, upgrade this one", v, latest)
}
