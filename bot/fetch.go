package bot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// The limits of downloading one photo from a platform (step 3). They are applied here, where the pipeline
// fetches, so every platform gets them whatever its HTTP client does.
const (
	// DefaultFetchTimeout is FETCH_TIMEOUT's default: the whole download of one photo.
	DefaultFetchTimeout = 60 * time.Second
	// DefaultFetchIdle is how long a download may go without a byte before it is given up.
	DefaultFetchIdle = 15 * time.Second
)

// fetchLimitError is the cause of a download that its own limits ended: it stalled, or took too long.
type fetchLimitError struct{ msg string }

func (e *fetchLimitError) Error() string { return e.msg }

// fetchWatch bounds one download: overall by total, and by idle between two reads that bring bytes (and
// before the first). It ends the download by cancelling the context the platform streams with.
type fetchWatch struct {
	parent context.Context
	ctx    context.Context
	stop   func()
	idle   time.Duration
	timer  *time.Timer
}

// watchFetch returns the context to open and read the file with; call stop when done. who names the
// platform in the message of a stall ("LINE sent no data for 15 s").
func watchFetch(parent context.Context, total, idle time.Duration, who string) *fetchWatch {
	tctx, cancelTotal := context.WithTimeoutCause(parent, total,
		&fetchLimitError{fmt.Sprintf("the download took longer than %s", seconds(total))})
	ctx, cancelIdle := context.WithCancelCause(tctx)
	stalled := &fetchLimitError{fmt.Sprintf("%s sent no data for %s", who, seconds(idle))}
	w := &fetchWatch{parent: parent, ctx: ctx, idle: idle}
	w.timer = time.AfterFunc(idle, func() { cancelIdle(stalled) })
	w.stop = func() {
		w.timer.Stop()
		cancelIdle(context.Canceled)
		cancelTotal()
	}
	return w
}

// limit returns the limit that ended the download, or nil when none did (the job's own context ending is not
// the download's fault: the pipeline leaves such a run to the next attempt).
func (w *fetchWatch) limit() error {
	var le *fetchLimitError
	if w.parent.Err() == nil && errors.As(context.Cause(w.ctx), &le) {
		return le
	}
	return nil
}

// body returns rc with every read that brings bytes rearming the idle limit.
func (w *fetchWatch) body(rc io.Reader) io.Reader {
	w.timer.Reset(w.idle) // The platform answered.
	return &watchedBody{r: rc, w: w}
}

type watchedBody struct {
	r io.Reader
	w *fetchWatch
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 && b.w.ctx.Err() == nil {
		b.w.timer.Reset(b.w.idle)
	}
	return n, err
}

// seconds writes d the way the texts do: "15 s", or Go's form below a second or off whole seconds.
func seconds(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return fmt.Sprintf("%d s", d/time.Second)
	}
	return d.String()
}

// platformTitle is how the diagnosis names a platform.
func platformTitle(name string) string {
	switch name {
	case "line":
		return "LINE"
	case "slack":
		return "Slack"
	case "web":
		return "the web chat"
	case "":
		return "the platform"
	}
	return name
}
