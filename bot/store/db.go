package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
)

// conn is the little our SQL needs from a pool or a transaction, whichever the back end.
// Queries are written once, with ? placeholders; the Postgres side rebinds them to $n.
type conn interface {
	exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	query(ctx context.Context, query string, args ...any) (rows, error)
	queryRow(ctx context.Context, query string, args ...any) row
}

type row interface{ Scan(dest ...any) error }

// stmt is one statement with its arguments, for execAll.
type stmt struct {
	query string
	args  []any
}

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// insertJob adds a River job inside the surrounding transaction.
type insertJob func(ctx context.Context, args RunArgs) error

// backend is one database: our tables through conn, River's jobs through insertJob in the same transaction.
type backend interface {
	conn
	// inTx runs fn in one transaction and commits when it returns nil.
	inTx(ctx context.Context, fn func(tx conn, insert insertJob) error) error
	// execAll runs the statements as one transaction, in one round trip where the driver can, and returns
	// the rows the last one affected.
	execAll(ctx context.Context, stmts ...stmt) (int64, error)
	ping(ctx context.Context) error
	close() error
	// releaseOrphans makes jobs that a dead process left running available again, where that is knowable.
	releaseOrphans(ctx context.Context) (int64, error)
	// priority is the way to the database for what a person waits for (acks, first feedback): the backend
	// itself, or one that does not queue behind the workers.
	priority() backend
}

// errNoRows reports whether err is either driver's "no rows".
func errNoRows(err error) bool {
	return errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows)
}

// sqlConn adapts *sql.DB and *sql.Tx (SQLite).
type sqlConn struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (c sqlConn) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := c.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (c sqlConn) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := c.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

func (c sqlConn) queryRow(ctx context.Context, query string, args ...any) row {
	return c.q.QueryRowContext(ctx, query, args...)
}

type sqlRows struct{ *sql.Rows }

// Close drops the error: Err reports anything that went wrong while reading.
func (r sqlRows) Close() { _ = r.Rows.Close() }

// pgConn adapts *pgxpool.Pool and pgx.Tx (PostgreSQL).
type pgConn struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}
}

func (c pgConn) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := c.q.Exec(ctx, rebind(query), args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (c pgConn) query(ctx context.Context, query string, args ...any) (rows, error) {
	return c.q.Query(ctx, rebind(query), args...)
}

func (c pgConn) queryRow(ctx context.Context, query string, args ...any) row {
	return c.q.QueryRow(ctx, rebind(query), args...)
}

// rebind turns ? placeholders into Postgres's $1, $2, …. Our SQL never has a ? inside a literal.
func rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// sqliteBackend is SQLite through database/sql, with River's riversqlite client for jobs.
type sqliteBackend struct {
	sqlConn
	db     *sql.DB
	driver *wakingDriver
	client *river.Client[*sql.Tx]
	// prio is the same file through a connection of its own, for what people wait for: the ack's Enqueue and
	// the first feedback. On the one shared connection they queued behind up to WORKERS workers' writes
	// (difyload at 200/s with 64 workers: ack p50 25 ms, first feedback p50 2.5 s); on their own, they wait
	// only for SQLite's write lock, which a worker holds for a fraction of a millisecond (busy_timeout).
	prio *sqliteBackend
}

func (b *sqliteBackend) priority() backend {
	if b.prio != nil {
		return b.prio
	}
	return b
}

// wakingDriver is River's SQLite driver with a listener that an insert can wake. SQLite has no NOTIFY: River
// writes its notifications to a table that its listener polls every 50 ms, so a new message waited 25 ms on
// average before a worker saw it, and an idle bot read that table 20 times a second. Every writer of this file
// is this process, so the store tells the listener itself when it committed a job: the listener reads the
// table at once then, and otherwise every listenPoll (what else River notifies, such as a leader resigning,
// can wait that long).
type wakingDriver struct {
	*riversqlite.Driver
	wake chan struct{}
}

// listenPoll is how often the listener reads River's notifications when nothing woke it.
const listenPoll = 500 * time.Millisecond

func newWakingDriver(db *sql.DB) *wakingDriver {
	return &wakingDriver{Driver: riversqlite.New(db), wake: make(chan struct{}, 1)}
}

// wakeUp tells the listener that a job was committed; it never blocks.
func (d *wakingDriver) wakeUp() {
	select {
	case d.wake <- struct{}{}:
	default: // A wake-up is pending already.
	}
}

func (d *wakingDriver) GetListener(params *riverdriver.GetListenenerParams) riverdriver.Listener {
	return &wakingListener{Listener: d.Driver.GetListener(params), wake: d.wake}
}

type wakingListener struct {
	riverdriver.Listener
	wake <-chan struct{}
}

// listenLook bounds one look at the table: River's listener reads it at once and then waits 50 ms for its
// next poll, which this cuts short.
const listenLook = 10 * time.Millisecond

// WaitForNotification reads River's notifications once, then waits for a wake-up or listenPoll before the next
// read, instead of River's listener's own 50 ms polls.
func (l *wakingListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	for {
		look, cancel := context.WithTimeout(ctx, listenLook)
		n, err := l.Listener.WaitForNotification(look)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			return n, err
		}
		t := time.NewTimer(listenPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-l.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (b *sqliteBackend) inTx(ctx context.Context, fn func(tx conn, insert insertJob) error) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // A no-op after Commit.
	inserted := false
	err = fn(sqlConn{q: tx}, func(ctx context.Context, args RunArgs) error {
		_, err := b.client.InsertTx(ctx, tx, args, nil)
		inserted = true
		return err
	})
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if inserted {
		b.driver.wakeUp()
	}
	return nil
}

// execAll on SQLite is a transaction: the file is local, so round trips cost nothing, and one commit
// serves them all.
func (b *sqliteBackend) execAll(ctx context.Context, stmts ...stmt) (int64, error) {
	if len(stmts) == 1 {
		return b.exec(ctx, stmts[0].query, stmts[0].args...)
	}
	var n int64
	err := b.inTx(ctx, func(tx conn, _ insertJob) error {
		for _, st := range stmts {
			var err error
			if n, err = tx.exec(ctx, st.query, st.args...); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

func (b *sqliteBackend) ping(ctx context.Context) error { return b.db.PingContext(ctx) }

// releaseOrphans: a SQLite file has one process working it, so at start every running job is an orphan of a
// process that died (kill -9, power loss). Waiting for River's rescuer would delay the answer by RescueAfter.
func (b *sqliteBackend) releaseOrphans(ctx context.Context) (int64, error) {
	// River's SQLite driver stores times as UTC text in this layout.
	now := time.Now().UTC().Round(time.Millisecond).Format("2006-01-02 15:04:05.000")
	return b.exec(ctx, "UPDATE river_job SET state = 'available', scheduled_at = ? WHERE state = 'running'", now)
}
func (b *sqliteBackend) close() error {
	var err error
	if b.prio != nil {
		err = b.prio.close()
	}
	return errors.Join(err, b.db.Close())
}

// pgBackend is PostgreSQL through a pgx pool, with River's riverpgxv5 client for jobs.
type pgBackend struct {
	pgConn
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

func (b *pgBackend) inTx(ctx context.Context, fn func(tx conn, insert insertJob) error) error {
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // A no-op after Commit.
	err = fn(pgConn{tx}, func(ctx context.Context, args RunArgs) error {
		_, err := b.client.InsertTx(ctx, tx, args, nil)
		return err
	})
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// execAll sends the statements as one pgx batch: one round trip, and one implicit transaction (and one
// WAL flush) for them all, since the batch ends in a single Sync.
func (b *pgBackend) execAll(ctx context.Context, stmts ...stmt) (int64, error) {
	if len(stmts) == 1 {
		return b.exec(ctx, stmts[0].query, stmts[0].args...)
	}
	batch := &pgx.Batch{}
	for _, st := range stmts {
		batch.Queue(rebind(st.query), st.args...)
	}
	res := b.pool.SendBatch(ctx, batch)
	var n int64
	for range stmts {
		tag, err := res.Exec()
		if err != nil {
			_ = res.Close()
			return 0, err
		}
		n = tag.RowsAffected()
	}
	return n, res.Close()
}

// The pool has connections enough for acks beside the workers.
func (b *pgBackend) priority() backend { return b }

func (b *pgBackend) ping(ctx context.Context) error { return b.pool.Ping(ctx) }

// releaseOrphans cannot tell an orphan from another replica's job on PostgreSQL at start; the replica watch
// (takeOver) does, by the replicas' heartbeats.
func (b *pgBackend) releaseOrphans(context.Context) (int64, error) { return 0, nil }

// dbNanos is the database's clock in Unix nanoseconds: heartbeats are written and judged by one clock, so
// replicas whose clocks disagree cannot take each other's runs.
const dbNanos = `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000000)::BIGINT`

func (b *pgBackend) beat(ctx context.Context, id string) error {
	_, err := b.exec(ctx, `INSERT INTO replicas (id, started_at, seen_at) VALUES (?, `+dbNanos+`, `+dbNanos+`)
		ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at`, id)
	return err
}

// takeOver frees the running jobs whose last worker is a known replica silent for longer than after. A job of
// a worker that never registered (an older difybot in a rolling upgrade) is left to River's rescuer. Replicas
// silent for a day are forgotten.
func (b *pgBackend) takeOver(ctx context.Context, self string, after time.Duration) (int64, error) {
	n, err := b.exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE state = 'running' AND kind = ? AND attempted_by[array_length(attempted_by, 1)] IN (
			SELECT id FROM replicas WHERE id <> ? AND seen_at < `+dbNanos+` - ?)`,
		RunArgs{}.Kind(), self, after.Nanoseconds())
	if err != nil {
		return 0, err
	}
	_, err = b.exec(ctx, `DELETE FROM replicas WHERE seen_at < `+dbNanos+` - ?`, (24 * time.Hour).Nanoseconds())
	return n, err
}

// leave marks a replica that stopped as silent since forever, so any job it could not hand back is taken over
// at once.
func (b *pgBackend) leave(ctx context.Context, id string) error {
	_, err := b.exec(ctx, `UPDATE replicas SET seen_at = 0 WHERE id = ?`, id)
	return err
}
func (b *pgBackend) close() error { b.pool.Close(); return nil }
