package store

import (
	"context"
	"strings"
	"sync"
	"time"
)

// stepFlushAfter bounds how long a step record waits in memory for its run's next save. A run saves after
// nearly every step, so most records go with a save, in its round trip and its commit; a crash within this
// time can lose only the records of steps the run itself has not saved past (the run row, which recovery
// reads, is never held back).
const stepFlushAfter = 250 * time.Millisecond

// stepBufMax is how many held records make AddStep write them at once instead of waiting.
const stepBufMax = 512

// stepRow is one step record's column values, in stepColumns's order.
type stepRow [11]any

const stepColumns = `INSERT INTO steps (run_id, attempt, n, total, name, status, started_at, duration_ns, code, error, fields) VALUES `

// stepBuffer holds step records until their run's next SaveRun writes them with it, or stepFlushAfter passes.
// On PostgreSQL a text message's six step records were six commits of their own, a sixth of its statements.
type stepBuffer struct {
	mu     sync.Mutex
	byRun  map[string][]stepRow
	n      int
	timer  *time.Timer // Set while records are held; its flush is owned by the store and awaited by Close.
	flushW sync.WaitGroup
	// closing stops new timers: Close writes what is left itself.
	closing bool
	// failed counts the flushes in a row that could not write; past stepMaxFailures the records are dropped.
	failed int
}

// stepMaxFailures is how many flushes in a row may fail before the held records are given up: a record that
// can never be written (its run deleted meanwhile) must not hold every later one back.
const stepMaxFailures = 5

// add holds r for its run and reports whether the buffer is full and should be written now.
func (b *stepBuffer) add(runID string, r stepRow, flush func()) (full bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byRun == nil {
		b.byRun = map[string][]stepRow{}
	}
	b.byRun[runID] = append(b.byRun[runID], r)
	b.n++
	if b.timer == nil && !b.closing {
		b.flushW.Add(1)
		b.timer = time.AfterFunc(stepFlushAfter, func() { defer b.flushW.Done(); flush() })
	}
	return b.n >= stepBufMax
}

// take removes and returns the records held for one run.
func (b *stepBuffer) take(runID string) []stepRow {
	b.mu.Lock()
	defer b.mu.Unlock()
	rows := b.byRun[runID]
	delete(b.byRun, runID)
	b.n -= len(rows)
	return rows
}

// takeAll removes and returns every held record, and lets the next add start a new timer.
func (b *stepBuffer) takeAll() []stepRow {
	b.mu.Lock()
	defer b.mu.Unlock()
	var rows []stepRow
	for id, rs := range b.byRun {
		rows = append(rows, rs...)
		delete(b.byRun, id)
	}
	b.n = 0
	if b.timer != nil && b.timer.Stop() {
		b.flushW.Done() // The timer's flush will not run: this caller writes the records.
	}
	b.timer = nil
	return rows
}

// insertSteps is one multi-row INSERT of rows, with its arguments.
func insertSteps(rows []stepRow) (string, []any) {
	args := make([]any, 0, len(rows)*len(stepRow{}))
	for _, r := range rows {
		args = append(args, r[:]...)
	}
	return insertRows(stepColumns, len(stepRow{}), len(rows)), args
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

// flushSteps writes every held step record in one statement. A failure puts them back for the next try,
// so a database that is away for a moment loses none.
func (s *Store) flushSteps(ctx context.Context) error {
	rows := s.steps.takeAll()
	if len(rows) == 0 {
		return nil
	}
	q, args := insertSteps(rows)
	_, err := s.db.exec(ctx, q, args...)
	giveUp := s.steps.count(err)
	switch {
	case err == nil:
	case giveUp:
		s.log.Error().Err(err).Int("records", len(rows)).Msg("store: step records could not be written and are dropped; the runs themselves are saved")
	default:
		s.steps.putBack(rows, s.flushStepsLogged)
	}
	return err
}

// flushStepsLogged is the timer's flush: nobody waits for it, so it logs what failed.
func (s *Store) flushStepsLogged() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.flushSteps(ctx); err != nil {
		s.log.Warn().Err(err).Msg("store: could not write step records; trying again")
	}
}

// count keeps the tally of flushes in a row that failed, and reports whether the held records should be
// given up.
func (b *stepBuffer) count(err error) (giveUp bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.failed = 0
		return false
	}
	b.failed++
	return b.failed >= stepMaxFailures
}

// putBack holds rows again after a failed write.
func (b *stepBuffer) putBack(rows []stepRow, flush func()) {
	for _, r := range rows {
		id, _ := r[0].(string)
		b.add(id, r, flush)
	}
}

// close stops the timer and waits for a flush in flight; the caller then writes what is held.
func (b *stepBuffer) close() {
	b.mu.Lock()
	b.closing = true
	if b.timer != nil && b.timer.Stop() {
		b.flushW.Done()
	}
	b.timer = nil
	b.mu.Unlock()
	b.flushW.Wait()
}
