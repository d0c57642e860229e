// Package store keeps difybot's runs, steps, node events, breaker override, conversations and the files of
// answers (with the key that signs their links), and queues runs with River, on SQLite (one replica, the default) or PostgreSQL (several replicas).
//
// Design. Each back end uses its native driver, because River needs one: SQLite goes through database/sql
// (modernc.org/sqlite, one connection, as riversqlite asks) with riversqlite, and PostgreSQL through a pgx pool
// with riverpgxv5. Our own SQL is written once, in one dialect both accept (? placeholders, rebound to $n for
// pgx; ON CONFLICT; RETURNING; times as Unix nanoseconds in BIGINT; JSON in TEXT), and runs through a tiny conn
// interface that either driver's pool or transaction satisfies. Only the auto-increment column type and the way
// migrations are serialised differ (one immediate transaction on SQLite; an advisory lock on Postgres, whose
// River migrations must each commit on their own).
//
// Durability. Enqueue writes the run row and its River job in one transaction, so once it returns the message
// is safe to ack: a crash afterwards leaves a queued job, and a duplicate delivery finds the row. A job whose
// process died mid-run stays "running" in River until RescueAfter, when River's rescuer retries it; a job
// interrupted by Stop goes back to the queue at once without spending an attempt. A job's last attempt is
// marked for the Processor (bot.FinalAttempt), which then ends the run with a diagnosis and a reply to the
// person, so a run the queue gives up on is never silent.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	_ "modernc.org/sqlite" // Registers the "sqlite" database/sql driver.

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/internal/recent"
)

// Config says where the store lives and how its queue works.
type Config struct {
	DatabaseURL string        // postgres://…; empty selects SQLite.
	SQLitePath  string        // The SQLite file when DatabaseURL is empty; its directory is created.
	Workers     int           // Runs worked at once by this replica; default 8.
	JobTimeout  time.Duration // Limit for one Process call; default 11m (DIFY_TIMEOUT's default plus a margin).
	// RescueAfter is how long a job may stay running before River assumes its process died and retries it.
	// It must exceed JobTimeout; default JobTimeout + 1m.
	RescueAfter time.Duration
	Schema      string // PostgreSQL schema, created if missing; "" is the connection's default (public).
	// RetryBase, when set, replaces River's wait before a failed job's next attempt (attempt⁴ seconds, ±10%:
	// 1 s, 16 s, 81 s, 256 s) by attempt⁴ × RetryBase. Tests make it short.
	RetryBase time.Duration
	// ReplicaTimeout is how long a replica sharing PostgreSQL may go without saying it is alive before the
	// others take over its running jobs; default 1m. It says so every sixth of it. SQLite has one process.
	ReplicaTimeout time.Duration
	ReplicaID      string // This replica's name among those sharing PostgreSQL; default host, pid and a random part.
	Logger         zerolog.Logger
}

// Processor works one queued run. *bot.Bot implements it. On the job's last attempt ctx carries
// bot.FinalAttempt.
type Processor interface {
	Process(ctx context.Context, runID string) error
}

// RunArgs is the River job for one attempt of a run. The attempt is part of the args so that a requeued
// run gets a new job while the same attempt can never be queued twice.
type RunArgs struct {
	RunID   string `json:"run_id"`
	Attempt int    `json:"attempt"`
}

// Kind is the River job kind.
func (RunArgs) Kind() string { return "difybot_run" }

// InsertOpts makes every insert unique by its args.
func (RunArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

const (
	// maxAttempts is how often River runs a job that keeps failing; snoozes do not count.
	maxAttempts = 5
	// minHold is the wait for a HoldError without a duration, which would otherwise spin the queue.
	minHold = time.Second
	// cancelGrace is how long Stop waits for cancelled jobs to return once its own deadline has passed.
	cancelGrace = 10 * time.Second
	// fetchCooldown is the least time between two fetches of one queue.
	fetchCooldown = 10 * time.Millisecond
	// sqlitePoll is how often an idle SQLite replica looks for jobs. River's notifications (read every 50 ms,
	// or at once when the store wakes the listener: wakingDriver) bring new jobs, so the poll only finds jobs
	// whose wait ended (retries, holds): idle, it costs little.
	sqlitePoll = 500 * time.Millisecond
	// postgresPoll is only a fallback: on PostgreSQL, River wakes on NOTIFY when a job is inserted.
	postgresPoll = 500 * time.Millisecond
)

// ErrNotFinished is bot.ErrNotFinished, kept here for callers of this package.
var ErrNotFinished = bot.ErrNotFinished

var schemaRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Store is the SQLite or PostgreSQL store and its River queue. It is safe for concurrent use.
type Store struct {
	cfg    Config
	db     backend
	d      dialect
	queue  queue
	worker *runWorker
	log    zerolog.Logger
	logs   logBuffer  // Step records and node events waiting to be written together.
	joined recent.Set // Thread keys this process stored lately.
	known  recent.Set // Runs this process queued or read lately: their step records can wait (AddStep).

	mu      sync.Mutex // Serialises Start, Stop and Close.
	running bool
	closed  bool
	// watching ends the replica watch Start began on PostgreSQL; watched is closed when it has ended.
	watching context.CancelFunc
	watched  chan struct{}
}

var _ bot.Store = (*Store)(nil)

// queue is the part of a River client Start and Stop use; it hides the client's transaction type.
type queue interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
}

// Open connects, applies River's migrations and ours, and returns a store ready for Enqueue.
// It does not work jobs: Start does.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: cfg.Logger}
	s.worker = &runWorker{store: s}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, s.worker); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	rc := &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:              workers,
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		MaxAttempts:          maxAttempts,
		FetchCooldown:        fetchCooldown,
		Logger:               slog.New(quietHandler{zerolog.NewSlogHandler(cfg.Logger)}),
	}
	if cfg.RetryBase > 0 {
		rc.RetryPolicy = retryPolicy{base: cfg.RetryBase}
	}
	if cfg.DatabaseURL == "" {
		rc.FetchPollInterval = sqlitePoll
		err = s.openSQLite(ctx, rc)
	} else {
		rc.FetchPollInterval = postgresPoll
		rc.Schema = cfg.Schema
		rc.ID = cfg.ReplicaID // River records it in attempted_by: how a job's replica is known.
		err = s.openPostgres(ctx, rc)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c Config) withDefaults() (Config, error) {
	if c.DatabaseURL == "" && c.SQLitePath == "" {
		return c, errors.New("store: DatabaseURL or SQLitePath is required")
	}
	if c.Schema != "" && !schemaRE.MatchString(c.Schema) {
		return c, fmt.Errorf("store: schema %q: only letters, digits and underscores, not starting with a digit", c.Schema)
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.ReplicaID == "" {
		host, _ := os.Hostname()
		c.ReplicaID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), strings.ToLower(rand.Text()[:8]))
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 11 * time.Minute
	}
	if c.RescueAfter == 0 {
		c.RescueAfter = c.JobTimeout + time.Minute
	}
	if c.ReplicaTimeout <= 0 {
		c.ReplicaTimeout = time.Minute
	}
	if c.RescueAfter <= c.JobTimeout {
		// Otherwise River would retry a job that is still legitimately running.
		return c, fmt.Errorf("store: RescueAfter (%s) must be longer than JobTimeout (%s)", c.RescueAfter, c.JobTimeout)
	}
	return c, nil
}

func (s *Store) openSQLite(ctx context.Context, rc *river.Config) error {
	path := s.cfg.SQLitePath
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	// WAL lets readers run beside the writer; immediate transactions take the write lock up front, so two
	// writers queue on busy_timeout instead of failing to upgrade a read lock.
	// WAL with synchronous=NORMAL: a commit survives a crash or kill -9 of difybot; only a power cut or kernel
	// crash can lose the last commits. FULL costs an fsync per write and tripled the bot's time per message
	// (BenchmarkPipeline: 5.3 ms → 1.7 ms). Deployments that need more use PostgreSQL.
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(wal)&_pragma=foreign_keys(on)&_pragma=synchronous(normal)&_txlock=immediate"
	gate := newWriteGate()
	db := sql.OpenDB(stmtConnector{dsn: dsn, gate: gate})
	// riversqlite asks for one connection: River's concurrent work otherwise meets SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	driver := newWakingDriver(db)
	err := func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		// River's migrations and ours commit together; the immediate transaction also keeps two processes
		// opening a new file from migrating it at once.
		m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: rc.Logger})
		if err != nil {
			return err
		}
		if _, err := m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil); err != nil {
			return fmt.Errorf("river: %w", err)
		}
		s.d = sqliteDialect
		if err := migrate(ctx, sqlConn{q: tx}, sqliteDialect); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("store: migrate %s: %w", path, err)
	}
	client, err := river.NewClient(driver, rc)
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("store: %w", err)
	}
	main := &sqliteBackend{sqlConn: sqlConn{q: db}, db: db, driver: driver, client: client}
	pdb := sql.OpenDB(stmtConnector{dsn: dsn, gate: gate, prio: true})
	pdb.SetMaxOpenConns(1)
	pdb.SetConnMaxLifetime(0)
	pdb.SetConnMaxIdleTime(0)
	main.prio = &sqliteBackend{sqlConn: sqlConn{q: pdb}, db: pdb, driver: driver, client: client}
	s.db = main
	s.queue = client
	return nil
}

func (s *Store) openPostgres(ctx context.Context, rc *river.Config) error {
	pc, err := pgxpool.ParseConfig(s.cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("store: DatabaseURL: %w", err)
	}
	if !strings.Contains(s.cfg.DatabaseURL, "pool_max_conns") {
		// pgx defaults to max(4, cores) connections, shared by acks, every worker and River itself; too few
		// made acks wait for a connection (docs/benchmarks.md: ack p99 31 ms → 17 ms at 200/s with 16).
		// Workers hold a connection only for short writes, never across a Dify call, so beyond 32 more of
		// them need no more connections (and replicas must fit PostgreSQL's max_connections, 100 by default).
		pc.MaxConns = max(pc.MaxConns, int32(min(s.cfg.Workers, 32))+8)
	}
	if s.cfg.Schema != "" {
		// River names its schema itself; ours are unqualified, so they follow the search path.
		pc.ConnConfig.RuntimeParams["search_path"] = s.cfg.Schema
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("store: connect: %w", err)
	}
	driver := riverpgxv5.New(pool)
	if err := s.migratePostgres(ctx, pool, driver, rc.Logger); err != nil {
		pool.Close()
		return fmt.Errorf("store: migrate: %w", err)
	}
	client, err := river.NewClient(driver, rc)
	if err != nil {
		pool.Close()
		return fmt.Errorf("store: %w", err)
	}
	s.db = &pgBackend{pgConn: pgConn{pool}, pool: pool, client: client}
	s.queue = client
	return nil
}

// migratePostgres applies River's migrations and ours under a session advisory lock, so replicas starting
// together take turns. River's run outside one enclosing transaction because some of them must commit
// before the next (a new enum value cannot be used in the transaction that adds it).
func (s *Store) migratePostgres(ctx context.Context, pool *pgxpool.Pool, driver *riverpgxv5.Driver, log *slog.Logger) error {
	lock, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer lock.Release()
	key := "difybot_migrate:" + s.cfg.Schema
	if _, err := lock.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, key); err != nil {
		return err
	}
	defer func() {
		if _, err := lock.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, key); err != nil {
			// Ending the session releases the lock; the pool then drops the closed connection.
			_ = lock.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if s.cfg.Schema != "" {
		if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{s.cfg.Schema}.Sanitize()); err != nil {
			return err
		}
	}
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: s.cfg.Schema, Logger: log})
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river: %w", err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	s.d = postgresDialect
	if err := migrate(ctx, pgConn{tx}, postgresDialect); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Start works queued runs with p until Stop. Only ctx's values reach the jobs, not its cancellation:
// cancelling it would abort runs mid-flight, and shutting down gracefully is Stop's job.
func (s *Store) Start(ctx context.Context, p Processor) error {
	if p == nil {
		return errors.New("store: Start needs a Processor")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running || s.closed {
		return errors.New("store: already started, or closed")
	}
	s.worker.proc.Store(&p)
	if n, err := s.db.releaseOrphans(ctx); err != nil {
		return fmt.Errorf("store: release jobs of a dead process: %w", err)
	} else if n > 0 {
		s.log.Warn().Int64("jobs", n).Msg("store: runs left running by a process that died are queued again")
	}
	if rs, ok := s.db.(replicaSet); ok {
		if err := rs.beat(ctx, s.cfg.ReplicaID); err != nil {
			return fmt.Errorf("store: register replica: %w", err)
		}
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s.watching, s.watched = cancel, make(chan struct{})
		go s.watch(wctx, rs)
	}
	if err := s.queue.Start(context.WithoutCancel(ctx)); err != nil {
		s.stopWatch()
		return fmt.Errorf("store: start queue: %w", err)
	}
	s.running = true
	return nil
}

// replicaSet is a database several replicas share: each says it is alive, and takes over the running jobs of
// one that stopped saying so. The pipeline makes a taken-over run safe: one Dify had started is read back by
// its id and never sent again (the same path as a restart after kill -9).
type replicaSet interface {
	beat(ctx context.Context, id string) error
	// takeOver makes the running jobs of replicas silent for longer than after available again.
	takeOver(ctx context.Context, self string, after time.Duration) (int64, error)
	leave(ctx context.Context, id string) error
}

// watch keeps this replica's heartbeat and takes over dead replicas' jobs until ctx ends.
func (s *Store) watch(ctx context.Context, rs replicaSet) {
	defer close(s.watched)
	every := s.cfg.ReplicaTimeout / 6
	t := time.NewTicker(every)
	defer t.Stop()
	lastBeat := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, every)
		err := rs.beat(bctx, s.cfg.ReplicaID)
		if err == nil {
			lastBeat = time.Now()
			var n int64
			if n, err = rs.takeOver(bctx, s.cfg.ReplicaID, s.cfg.ReplicaTimeout); n > 0 {
				s.log.Warn().Int64("jobs", n).Msg("store: runs of a replica that went silent are queued again here")
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			lvl := s.log.Warn()
			if time.Since(lastBeat) > s.cfg.ReplicaTimeout-every {
				// Others may soon take this replica's runs; the pipeline keeps them from running twice.
				lvl = s.log.Error()
			}
			lvl.Err(err).Dur("silent", time.Since(lastBeat)).Msg("store: could not tell the other replicas this one is alive")
		}
	}
}

// stopWatch ends the replica watch, if any, and says this replica left so nothing of it waits for a timeout.
func (s *Store) stopWatch() {
	if s.watching == nil {
		return
	}
	s.watching()
	<-s.watched
	s.watching = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.db.(replicaSet).leave(ctx, s.cfg.ReplicaID); err != nil {
		s.log.Warn().Err(err).Msg("store: could not say this replica left")
	}
}

// Stop stops fetching jobs and waits for the ones in flight until ctx is done; then it cancels them, and
// they go back to the queue for the next start (or another replica). It returns nil once River has stopped.
func (s *Store) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(ctx)
}

func (s *Store) stopLocked(ctx context.Context) error {
	if !s.running {
		return nil
	}
	s.running = false
	// The watch ends after the queue: until then this replica's jobs are its own.
	defer s.stopWatch()
	if err := s.queue.Stop(ctx); err == nil {
		return nil
	}
	s.log.Warn().Msg("store: stop deadline passed with runs in flight; cancelling them so they are queued again")
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelGrace)
	defer cancel()
	if err := s.queue.StopAndCancel(cctx); err != nil {
		return fmt.Errorf("store: stop: cancelled runs did not return in %s; River retries them after %s: %w",
			cancelGrace, s.cfg.RescueAfter, err)
	}
	return nil
}

// Close stops the queue if it still runs (cancelling jobs at once) and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Skip the graceful wait: a caller that wanted it called Stop.
	stopErr := s.stopLocked(ctx)
	s.logs.close()
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	if err := s.flushLogs(fctx, ""); err != nil {
		stopErr = errors.Join(stopErr, fmt.Errorf("store: write the last step records and node events: %w", err))
	}
	return errors.Join(stopErr, s.db.close())
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.ping(ctx) }

// runWorker hands River's jobs to the Processor and maps its answer to River's outcomes.
type runWorker struct {
	river.WorkerDefaults[RunArgs]
	proc  atomic.Pointer[Processor] // Set by Start, before River runs any job.
	store *Store
}

func (w *runWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	p := w.proc.Load()
	if p == nil {
		return errors.New("store: no Processor") // Unreachable: River works jobs only after Start.
	}
	final := job.Attempt >= job.MaxAttempts // A snooze gives its attempt back, so only failures count.
	pctx := ctx
	if final {
		// Nobody retries after this attempt: the bot ends the run with a diagnosis reply instead of failing.
		pctx = bot.FinalAttempt(ctx)
	}
	err := (*p).Process(pctx, job.Args.RunID)
	if err == nil {
		return nil
	}
	var hold *bot.HoldError
	switch {
	case errors.As(err, &hold):
		// The breaker is open: wait without spending an attempt.
		after := hold.After
		if after <= 0 {
			after = minHold
		}
		return river.JobSnooze(after)
	case errors.Is(ctx.Err(), context.Canceled):
		// Stop cancelled the run (a timeout would be DeadlineExceeded): queue it again at once, for free.
		return river.JobSnooze(0)
	case errors.Is(err, bot.ErrNotFound):
		return river.JobCancel(err) // The run is gone; retrying cannot help.
	}
	if final {
		w.store.abandon(ctx, job.Args.RunID, err)
	}
	return err
}

// retryPolicy is River's schedule, attempt⁴ (counted by the job's errors, as River does, so snoozes do not
// count), scaled by base.
type retryPolicy struct{ base time.Duration }

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	n := time.Duration(len(job.Errors) + 1)
	return time.Now().Add(n * n * n * n * p.base)
}

// abandon marks a run failed when River discards its last attempt, so the admin list does not show it
// running forever. A run that already has an outcome keeps it. It is the backstop: the bot, told the attempt
// is the last (bot.FinalAttempt), ends the run and tells the person itself, and fails only when it cannot.
func (s *Store) abandon(ctx context.Context, id string, cause error) {
	var be *bot.Error
	if ctx.Err() != nil && !(errors.As(cause, &be) && be.Code != "") {
		// The job's own time limit stopped it, and nothing said what was slow: the deadline alone is not Dify's.
		cause = bot.Classified(bot.CodeInternal, "queue", fmt.Errorf("the job's last attempt ran out of its time (%s): %w", s.cfg.JobTimeout, cause))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	d := bot.Diagnose(cause)
	diag, err := json.Marshal(d)
	if err == nil {
		now := time.Now().UnixNano()
		_, err = s.db.exec(ctx, `UPDATE runs SET status = ?, code = ?, diagnosis = ?, finished_at = ?, updated_at = ?
			WHERE id = ? AND status NOT IN (?, ?)`,
			string(bot.RunFailed), string(d.Code), string(diag), now, now, id, string(bot.RunSucceeded), string(bot.RunFailed))
	}
	if err != nil {
		s.log.Error().Err(err).Str("run_id", id).Msg("store: could not mark an abandoned run failed")
		return
	}
	s.log.Error().Str("run_id", id).Str("code", string(d.Code)).Str("error", cause.Error()).Int("attempts", maxAttempts).
		Msg("store: run failed on every attempt; marked failed")
}
