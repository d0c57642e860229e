// Package storetest gives tests a store on each back end: SQLite in a temp dir, and PostgreSQL in a schema of
// its own (dropped at cleanup) from DIFYBOT_TEST_POSTGRES, skipped with a clear message when unreachable.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot/store"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// DefaultPostgres is the database CI machines run; DIFYBOT_TEST_POSTGRES overrides it.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DB is one back end for a test: a Config to open it and Exec to change it behind the store's back.
type DB struct {
	Name   string
	Config store.Config
	Exec   func(t testing.TB, query string)
}

// Open opens a store on d, closed at cleanup. edit adjusts the config.
func (d DB) Open(t testing.TB, edit ...func(*store.Config)) *store.Store {
	t.Helper()
	cfg := d.Config
	for _, e := range edit {
		e(&cfg)
	}
	s, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("open %s store: %v", d.Name, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Each runs fn as a parallel subtest on SQLite and on PostgreSQL.
func Each(t *testing.T, fn func(t *testing.T, d DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, SQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, Postgres(t))
	})
}

func base() store.Config {
	return store.Config{Workers: 4, JobTimeout: 30 * time.Second, Logger: zerolog.Nop()}
}

// SQLite is a fresh database file in a temp dir.
func SQLite(t testing.TB) DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "difybot.db")
	cfg := base()
	cfg.SQLitePath = path
	return DB{Name: "sqlite", Config: cfg, Exec: func(t testing.TB, query string) {
		t.Helper()
		db, err := openSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(t.Context(), query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}}
}

var (
	pgOnce sync.Once
	pgURL  string
	pgErr  error
)

// PostgresURL returns the test database's URL, or skips the test when it is unreachable.
func PostgresURL(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		pgURL = os.Getenv("DIFYBOT_TEST_POSTGRES")
		if pgURL == "" {
			pgURL = DefaultPostgres
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var c *pgx.Conn
		if c, pgErr = pgx.Connect(ctx, pgURL); pgErr == nil {
			pgErr = c.Ping(ctx)
			_ = c.Close(ctx)
		}
	})
	if pgErr != nil {
		t.Skipf("PostgreSQL not reachable at %s: %v; set DIFYBOT_TEST_POSTGRES", pgURL, pgErr)
	}
	return pgURL
}

// Schema returns a new schema name, dropped at cleanup, so tests can share one database in parallel.
func Schema(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "difybot_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// Database creates a database of its own on the test server, dropped at cleanup, and returns its URL: for
// processes that take only a DATABASE_URL.
func Database(t testing.TB) string {
	t.Helper()
	url := PostgresURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "difybot_test_" + hex.EncodeToString(b[:])
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	u := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	return u
}

// Postgres is a fresh schema in the test database.
func Postgres(t testing.TB) DB {
	t.Helper()
	url := PostgresURL(t)
	schema := Schema(t, url)
	cfg := base()
	cfg.DatabaseURL, cfg.Schema = url, schema
	return DB{Name: "postgres", Config: cfg, Exec: func(t testing.TB, query string) {
		t.Helper()
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(t.Context(), "SET search_path TO "+schema); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(t.Context(), query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}}
}
