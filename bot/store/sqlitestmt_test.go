package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// cached reports how many statements the pool's connection keeps prepared.
func cached(t *testing.T, db *sql.DB) int {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := -1
	if err := c.Raw(func(dc any) error { n = len(dc.(*stmtConn).stmts); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStatementsArePreparedOnce: a text run again uses the statement prepared the first time, also inside a
// transaction; the same text while its rows are still open runs on its own and both read right; and the cache
// stays bounded when texts vary.
func TestStatementsArePreparedOnce(t *testing.T) {
	ctx := context.Background()
	db := sql.OpenDB(stmtConnector{dsn: "file:" + filepath.Join(t.TempDir(), "db") + "?_pragma=journal_mode(wal)&_txlock=immediate", gate: newWriteGate()})
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (n INTEGER)"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := db.ExecContext(ctx, "INSERT INTO t (n) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	if n := cached(t, db); n != 2 {
		t.Fatalf("%d statements prepared for 2 texts run 51 times", n)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	const q = "SELECT n FROM t WHERE n < ? ORDER BY n"
	outer, err := tx.QueryContext(ctx, q, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for outer.Next() {
		var a int
		if err := outer.Scan(&a); err != nil {
			t.Fatal(err)
		}
		// The same text while outer's rows are open: it must not reset outer's statement.
		var inner []int
		rows, err := tx.QueryContext(ctx, q, 2)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var b int
			rows.Scan(&b)
			inner = append(inner, b)
		}
		rows.Close()
		if fmt.Sprint(inner) != "[0 1]" {
			t.Errorf("inner query read %v, want [0 1]", inner)
		}
		got = append(got, a)
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if fmt.Sprint(got) != "[0 1 2]" {
		t.Errorf("outer query read %v, want [0 1 2]", got)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t (n) VALUES (?)", 99); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var count int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&count); err != nil || count != 51 {
		t.Errorf("count = %d, %v; want 51", count, err)
	}
	if n := cached(t, db); n != 4 {
		t.Errorf("%d statements prepared, want 4 (create, insert, select, count)", n)
	}

	for i := range maxStmts + 20 {
		var v int
		if err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT %d", i)).Scan(&v); err != nil || v != i {
			t.Fatalf("SELECT %d = %d, %v", i, v, err)
		}
	}
	if n := cached(t, db); n != maxStmts {
		t.Errorf("%d statements cached, want the bound %d", n, maxStmts)
	}
}

// TestWritersTakeTurns: two connections to one file (the workers' and the priority one) write at once, in
// transactions, autocommit statements and UPDATE … RETURNING queries, with SQLite's own busy wait off: the
// gate lets one write at a time, so none is refused with "database is locked".
func TestWritersTakeTurns(t *testing.T) {
	ctx := context.Background()
	dsn := "file:" + filepath.Join(t.TempDir(), "db") + "?_pragma=journal_mode(wal)&_pragma=busy_timeout(0)&_txlock=immediate"
	gate := newWriteGate()
	main, prio := sql.OpenDB(stmtConnector{dsn: dsn, gate: gate}), sql.OpenDB(stmtConnector{dsn: dsn, gate: gate, prio: true})
	defer main.Close()
	defer prio.Close()
	main.SetMaxOpenConns(1)
	prio.SetMaxOpenConns(1)
	if _, err := main.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for _, db := range []*sql.DB{main, prio} {
		for range 4 {
			wg.Go(func() {
				for i := range 25 {
					var err error
					switch i % 3 {
					case 0:
						_, err = db.ExecContext(ctx, "INSERT INTO t (n) VALUES (?)", i)
					case 1:
						err = func() error {
							tx, err := db.BeginTx(ctx, nil)
							if err != nil {
								return err
							}
							defer tx.Rollback()
							if _, err := tx.ExecContext(ctx, "INSERT INTO t (n) VALUES (?)", i); err != nil {
								return err
							}
							return tx.Commit()
						}()
					default:
						var n int
						err = db.QueryRowContext(ctx, "UPDATE t SET n = n + 1 WHERE id = 1 RETURNING n").Scan(&n)
						if errors.Is(err, sql.ErrNoRows) {
							err = nil
						}
					}
					if err != nil {
						errs <- err
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var count int
	if err := main.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&count); err != nil || count != 8*17 {
		t.Errorf("%d rows, %v; want %d", count, err, 8*17)
	}
}
