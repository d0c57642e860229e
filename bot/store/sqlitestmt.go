package store

import (
	"context"
	"database/sql/driver"
	"errors"

	"modernc.org/sqlite"
)

// stmtConnector opens modernc's SQLite connections that keep every statement text they run prepared.
// database/sql hands a query with its text to the connection, and modernc parses it afresh each time: parsing
// was a third of serve's CPU at 200 messages/s, most of it River's job insert. Our statements and River's are
// a few dozen fixed texts, so each connection parses each once.
type stmtConnector struct{ dsn string }

func (c stmtConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := (&sqlite.Driver{}).Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &stmtConn{inner: conn.(sqliteConn), stmts: map[string]*cachedStmt{}}, nil
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
	s, err := c.stmt(ctx, query)
	if err != nil || s == nil {
		return c.inner.ExecContext(ctx, query, args)
	}
	return s.st.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *stmtConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, query)
	if err != nil || s == nil {
		return c.inner.QueryContext(ctx, query, args)
	}
	r, err := s.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.busy = true
	return &stmtRows{Rows: r, s: s}, nil
}

// stmtRows frees its statement for the next query when closed (modernc resets it then).
type stmtRows struct {
	driver.Rows
	s *cachedStmt
}

func (r *stmtRows) Close() error {
	r.s.busy = false
	return r.Rows.Close()
}

func (c *stmtConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }
func (c *stmtConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, query)
}
func (c *stmtConn) Begin() (driver.Tx, error) {
	return c.inner.BeginTx(context.Background(), driver.TxOptions{})
}
func (c *stmtConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
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
