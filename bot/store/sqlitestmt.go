package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"

	"modernc.org/sqlite"
)

// stmtConnector opens modernc's SQLite connections that keep every statement text they run prepared.
// database/sql hands a query with its text to the connection, and modernc parses it afresh each time: parsing
// was a third of serve's CPU at 200 messages/s, most of it River's job insert. Our statements and River's are
// a few dozen fixed texts, so each connection parses each once.
//
// Its connections also take turns to write through gate, in Go: SQLite's own wait for its write lock sleeps
// 1, 2, 5, 10, 20 … ms between tries, which an ack behind a worker's write paid even when the lock came free
// within a millisecond (ack p99 at 200/s). The priority connection (acks, first feedback) goes first.
type stmtConnector struct {
	dsn  string
	gate *writeGate
	prio bool
}

func (c stmtConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := (&sqlite.Driver{}).Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &stmtConn{inner: conn.(sqliteConn), stmts: map[string]*cachedStmt{}, gate: c.gate, prio: c.prio}, nil
}

// writeGate lets one of the file's connections write at a time. A priority writer waits only for the write in
// progress: the others first queue on normal, so at most one of them contends with it.
type writeGate struct {
	lock   chan struct{}
	normal chan struct{}
}

func newWriteGate() *writeGate {
	return &writeGate{lock: make(chan struct{}, 1), normal: make(chan struct{}, 1)}
}

func (g *writeGate) acquire(ctx context.Context, prio bool) error {
	if g == nil {
		return nil
	}
	if !prio {
		select {
		case g.normal <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-g.normal }()
	}
	select {
	case g.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *writeGate) release() {
	if g != nil {
		<-g.lock
	}
}

// gatedTx releases the gate when its transaction ends.
type gatedTx struct {
	driver.Tx
	c *stmtConn
}

func (t gatedTx) Commit() error   { defer t.c.endTx(); return t.Tx.Commit() }
func (t gatedTx) Rollback() error { defer t.c.endTx(); return t.Tx.Rollback() }

func (c *stmtConn) endTx() {
	c.inTx = false
	c.gate.release()
}

func (stmtConnector) Driver() driver.Driver { return &sqlite.Driver{} }

// sqliteConn is what modernc's connection offers and stmtConn uses.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// maxStmts bounds a connection's statements: texts built with a varying number of placeholders (a multi-row
// insert) could otherwise grow it.
const maxStmts = 256

// stmtConn is one connection with its prepared statements. database/sql uses a connection from one goroutine
// at a time, so it needs no lock.
type stmtConn struct {
	inner sqliteConn
	stmts map[string]*cachedStmt
	gate  *writeGate
	prio  bool
	inTx  bool // A transaction holds the gate; its statements need not take it.
}

type cachedStmt struct {
	st   driver.Stmt
	busy bool // Rows from it are open: the same text meanwhile (in the same transaction) runs unprepared.
}

var (
	_ driver.ExecerContext  = (*stmtConn)(nil)
	_ driver.QueryerContext = (*stmtConn)(nil)
)

// stmt returns query's prepared statement, preparing it the first time; nil when it is busy or the cache is
// full, and the text then runs as it is.
func (c *stmtConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if s, ok := c.stmts[query]; ok {
		if s.busy {
			return nil, nil
		}
		return s, nil
	}
	if len(c.stmts) >= maxStmts {
		return nil, nil
	}
	st, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s := &cachedStmt{st: st}
	c.stmts[query] = s
	return s, nil
}

func (c *stmtConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if !c.inTx {
		if err := c.gate.acquire(ctx, c.prio); err != nil {
			return nil, err
		}
		defer c.gate.release()
	}
	s, err := c.stmt(ctx, query)
	if err != nil || s == nil {
		return c.inner.ExecContext(ctx, query, args)
	}
	return s.st.(driver.StmtExecContext).ExecContext(ctx, args)
}

// QueryContext runs a query; one that writes (River's fetch is an UPDATE … RETURNING) holds the gate until its
// rows are closed, outside a transaction.
func (c *stmtConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	gated := !c.inTx && writes(query)
	if gated {
		if err := c.gate.acquire(ctx, c.prio); err != nil {
			return nil, err
		}
	}
	r, s, err := c.query(ctx, query, args)
	if err != nil || (!gated && s == nil) {
		if gated {
			c.gate.release()
		}
		return r, err
	}
	return &stmtRows{Rows: r, s: s, gate: gated, c: c}, nil
}

func (c *stmtConn) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, *cachedStmt, error) {
	s, err := c.stmt(ctx, query)
	if err != nil || s == nil {
		r, err := c.inner.QueryContext(ctx, query, args)
		return r, nil, err
	}
	r, err := s.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, nil, err
	}
	s.busy = true
	return r, s, nil
}

// writes reports whether a query writes: it starts with INSERT, UPDATE, DELETE or REPLACE, or returns rows
// from a write.
func writes(query string) bool {
	q := strings.TrimLeft(query, " \t\n")
	for _, w := range []string{"INSERT", "UPDATE", "DELETE", "REPLACE"} {
		if len(q) >= len(w) && strings.EqualFold(q[:len(w)], w) {
			return true
		}
	}
	return strings.Contains(query, "RETURNING")
}

// stmtRows frees its statement for the next query when closed (modernc resets it then), and the gate when
// its query writes.
type stmtRows struct {
	driver.Rows
	s    *cachedStmt // Nil when the query ran unprepared.
	gate bool
	c    *stmtConn
}

func (r *stmtRows) Close() error {
	if r.s != nil {
		r.s.busy = false
	}
	err := r.Rows.Close()
	if r.gate {
		r.c.gate.release()
	}
	return err
}

func (c *stmtConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }
func (c *stmtConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, query)
}
func (c *stmtConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx takes the gate for the whole transaction: the DSN's _txlock=immediate makes every one a writer.
func (c *stmtConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.gate.acquire(ctx, c.prio); err != nil {
		return nil, err
	}
	tx, err := c.inner.BeginTx(ctx, opts)
	if err != nil {
		c.gate.release()
		return nil, err
	}
	c.inTx = true
	return gatedTx{tx, c}, nil
}
func (c *stmtConn) Ping(ctx context.Context) error         { return c.inner.Ping(ctx) }
func (c *stmtConn) ResetSession(ctx context.Context) error { return c.inner.ResetSession(ctx) }
func (c *stmtConn) IsValid() bool                          { return c.inner.IsValid() }

func (c *stmtConn) Close() error {
	var errs []error
	for _, s := range c.stmts {
		errs = append(errs, s.st.Close())
	}
	c.stmts = nil
	return errors.Join(append(errs, c.inner.Close())...)
}
