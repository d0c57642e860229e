package store

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// logFlushAfter bounds how long a step record or node event waits in memory. A run's held rows go with its
// next save (SaveRun, Admit), in the save's round trip and commit, so what the log shows survives a crash at
// every point the run itself does; rows no save follows are written, every run's together, within this time.
const logFlushAfter = 250 * time.Millisecond

// logBufMax is how many held rows make the adder write them at once instead of waiting.
const logBufMax = 512

// logMaxFailures is how many flushes in a row may fail before the held rows are given up: a row that can
// never be written (its run deleted meanwhile) must not hold every later one back.
const logMaxFailures = 5

// stepRow and nodeRow are one step record's and one node event's column values, in their INSERT's order.
type (
	stepRow [11]any
	nodeRow [11]any
)

const (
	stepColumns = `INSERT INTO steps (run_id, attempt, n, total, name, status, started_at, duration_ns, code, error, fields) VALUES `
	nodeColumns = `INSERT INTO node_events (run_id, seq, event, node_id, node_type, title, node_index, status, elapsed_s, error, happened_at) VALUES `
)

// heldLogs are the rows held for one run, in the order they came.
type heldLogs struct {
	steps []stepRow
	nodes []nodeRow
}

func (h heldLogs) len() int { return len(h.steps) + len(h.nodes) }

// logBuffer holds step records and node events of the runs this process knows until a save or a flush
// writes them.
type logBuffer struct {
	mu    sync.Mutex
	byRun map[string]heldLogs
	// busy has the runs whose taken rows are being written, each closed once they are: a run's later rows wait
	// for it, so they are stored after the earlier ones.
	busy   map[string]chan struct{}
	n      int
	timer  *time.Timer // Set while rows are held; its flush is owned by the store and awaited by Close.
	flushW sync.WaitGroup
	// closing stops new timers: Close writes what is left itself.
	closing bool
	// failed counts the flushes in a row that could not write; past logMaxFailures the rows are dropped.
	failed int
	flush  func() // The timer's.
}

// add holds rows for their run and reports whether the buffer is full and should be written now.
func (b *logBuffer) add(runID string, rows heldLogs, flush func()) (full bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byRun == nil {
		b.byRun = map[string]heldLogs{}
	}
	h := b.byRun[runID]
	h.steps, h.nodes = append(h.steps, rows.steps...), append(h.nodes, rows.nodes...)
	b.byRun[runID] = h
	b.n += rows.len()
	b.flush = flush
	b.arm()
	return b.n >= logBufMax
}

// arm starts the timer's flush unless one is due or the buffer is closing; b.mu is held.
func (b *logBuffer) arm() {
	if b.timer == nil && !b.closing && b.n > 0 {
		flush := b.flush
		b.flushW.Add(1)
		b.timer = time.AfterFunc(logFlushAfter, func() { defer b.flushW.Done(); flush() })
	}
}

// take removes and returns the rows held for runID, once no write of its earlier rows is in flight, or those
// of every run not being written when runID is "" (the flush). The caller writes them, or puts them back, and
// then calls done.
func (b *logBuffer) take(runID string) (taken map[string]heldLogs, done func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch, busy := b.busy[runID]; runID != "" && busy; ch, busy = b.busy[runID] {
		b.mu.Unlock()
		<-ch
		b.mu.Lock()
	}
	taken = map[string]heldLogs{}
	for id, h := range b.byRun {
		if runID == "" && b.busy[id] == nil || id == runID {
			taken[id] = h
			delete(b.byRun, id)
			b.n -= h.len()
		}
	}
	if runID == "" {
		if b.timer != nil && b.timer.Stop() {
			b.flushW.Done() // The timer's flush will not run: this caller writes the rows.
		}
		b.timer = nil
		b.arm() // For the rows of runs being written meanwhile, left for later.
	}
	if len(taken) == 0 {
		return nil, func() {}
	}
	ch := make(chan struct{})
	if b.busy == nil {
		b.busy = map[string]chan struct{}{}
	}
	for id := range taken {
		b.busy[id] = ch
	}
	return taken, func() {
		b.mu.Lock()
		for id := range taken {
			delete(b.busy, id)
		}
		b.mu.Unlock()
		close(ch)
	}
}

// putBack holds rows again after a failed write, before any that came meanwhile.
func (b *logBuffer) putBack(all map[string]heldLogs, flush func()) {
	for id, h := range all {
		b.mu.Lock()
		later := b.byRun[id]
		delete(b.byRun, id)
		b.n -= later.len()
		b.mu.Unlock()
		b.add(id, heldLogs{steps: slices.Concat(h.steps, later.steps), nodes: slices.Concat(h.nodes, later.nodes)}, flush)
	}
}

// count keeps the tally of flushes in a row that failed, and reports whether the held rows should be given up.
func (b *logBuffer) count(err error) (giveUp bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.failed = 0
		return false
	}
	b.failed++
	return b.failed >= logMaxFailures
}

// close stops the timer and waits for a flush in flight; the caller then writes what is held.
func (b *logBuffer) close() {
	b.mu.Lock()
	b.closing = true
	if b.timer != nil && b.timer.Stop() {
		b.flushW.Done()
	}
	b.timer = nil
	b.mu.Unlock()
	b.flushW.Wait()
}

// insertLogs is the statements that write the rows of all: at most one multi-row INSERT per table.
func insertLogs(all map[string]heldLogs) []stmt {
	var steps []stepRow
	var nodes []nodeRow
	for _, h := range all {
		steps, nodes = append(steps, h.steps...), append(nodes, h.nodes...)
	}
	var out []stmt
	if len(steps) > 0 {
		out = append(out, insertOf(stepColumns, steps))
	}
	if len(nodes) > 0 {
		out = append(out, insertOf(nodeColumns, nodes))
	}
	return out
}

// insertOf is one multi-row INSERT of rows after head, with its arguments.
func insertOf[R stepRow | nodeRow](head string, rows []R) stmt {
	width := len(R{})
	args := make([]any, 0, len(rows)*width)
	for _, r := range rows {
		args = append(args, r[:]...)
	}
	return stmt{insertRows(head, width, len(rows)), args}
}

// insertRows is head (an INSERT … VALUES) followed by n rows of width placeholders.
func insertRows(head string, width, n int) string {
	row := "(?" + strings.Repeat(", ?", width-1) + ")"
	var q strings.Builder
	q.Grow(len(head) + n*(len(row)+2))
	q.WriteString(head)
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(row)
	}
	return q.String()
}

// holdLogs holds rows of a run this process knows (it queued, read or saved it lately) for its next save.
// Those of any other run are written at once, so a row of an unknown run is still refused.
func (s *Store) holdLogs(ctx context.Context, runID string, rows heldLogs) error {
	if !s.known.Has(runID) {
		_, err := s.db.execAll(ctx, insertLogs(map[string]heldLogs{runID: rows})...)
		return err
	}
	if s.logs.add(runID, rows, s.flushLogsLogged) {
		return s.flushLogs(ctx, "")
	}
	return nil
}

// flushLogs writes the held rows of runID, or of every run when runID is "". A failure puts them back for
// the next try, so a database that is away for a moment loses none.
func (s *Store) flushLogs(ctx context.Context, runID string) error {
	all, done := s.logs.take(runID)
	defer done()
	if len(all) == 0 {
		return nil
	}
	_, err := s.db.execAll(ctx, insertLogs(all)...)
	s.logsWritten(all, err)
	return err
}

// withLogs writes save with runID's held rows before it, in one round trip and commit, and returns the rows
// save changed.
func (s *Store) withLogs(ctx context.Context, runID string, stmts ...stmt) (int64, error) {
	held, done := s.logs.take(runID)
	defer done()
	n, err := s.db.execAll(ctx, append(insertLogs(held), stmts...)...)
	if len(held) > 0 {
		s.logsWritten(held, err)
	}
	return n, err
}

// logsWritten keeps the tally of writes that failed, and puts the rows of one that failed back, or after
// logMaxFailures in a row gives them up.
func (s *Store) logsWritten(all map[string]heldLogs, err error) {
	switch giveUp := s.logs.count(err); {
	case err == nil:
	case giveUp:
		n := 0
		for _, h := range all {
			n += h.len()
		}
		s.log.Error().Err(err).Int("rows", n).Msg("store: step records and node events could not be written and are dropped; the runs themselves are saved")
	default:
		s.logs.putBack(all, s.flushLogsLogged)
	}
}

// flushLogsLogged is the timer's flush: nobody waits for it, so it logs what failed.
func (s *Store) flushLogsLogged() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.flushLogs(ctx, ""); err != nil {
		s.log.Warn().Err(err).Msg("store: could not write step records and node events; trying again")
	}
}
