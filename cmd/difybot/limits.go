package main

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// httpLimits bound what one client can hold of a replica. Webhook bodies are read before their signature can be
// checked, so anyone can open connections and send slowly: each body gets a deadline, and only so many are read
// at once.
type httpLimits struct {
	ReadHeader time.Duration // For the request line and headers.
	// Body is how long a request body may take after its headers, unless its route allows longer
	// (bot.Route.BodyTimeout). Slack and LINE send a few kilobytes and redeliver what fails.
	Body time.Duration
	// Write is how long writing a response may take: after the body's deadline for requests with a body, after
	// the headers for the rest. The web chat's event stream renews it on every write.
	Write time.Duration
	Idle  time.Duration // A keep-alive connection with no request is closed after this.
	// Bodies is how many request bodies are read at once. Another one waits up to BusyWait for a slot, then is
	// answered 503 with Retry-After, which Slack and LINE redeliver.
	Bodies   int
	BusyWait time.Duration
}

// defaultLimits are serve's limits; tests shorten them on the system before serving.
func defaultLimits() httpLimits {
	return httpLimits{ReadHeader: 10 * time.Second, Body: 10 * time.Second, Write: 30 * time.Second, Idle: 60 * time.Second,
		Bodies: 16, BusyWait: 250 * time.Millisecond}
}

// server is the HTTP server for handler under l.
func (l httpLimits) server(handler http.Handler) *http.Server {
	// No ReadTimeout: it would also end the web chat's event stream (the server's read that watches for the
	// client going away would fail). Bodies get their own deadline from bodyGuard.
	return &http.Server{Handler: handler, ReadHeaderTimeout: l.ReadHeader, WriteTimeout: l.Write, IdleTimeout: l.Idle}
}

// bodyGuard is the middleware in front of every route: a request with a body takes one of l.Bodies slots (or is
// answered 503) and must arrive within the body deadline. The slot is given back, and the read deadline lifted,
// once the body is read to its end, so a handler storing the message is not cut short; or when the handler
// returns.
type bodyGuard struct {
	limits httpLimits
	slots  chan struct{}
}

func newBodyGuard(l httpLimits) *bodyGuard {
	return &bodyGuard{limits: l, slots: make(chan struct{}, max(l.Bodies, 1))}
}

// hasBody reports a request that carries a body: a declared length, or chunked.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

func (g *bodyGuard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hasBody(r) {
			next.ServeHTTP(w, r)
			return
		}
		if !g.acquire() {
			w.Header().Set("Retry-After", "1")
			// The body is not read: the connection closes after the answer instead of draining it.
			w.Header().Set("Connection", "close")
			http.Error(w, "too many requests being received; try again shortly", http.StatusServiceUnavailable)
			return
		}
		rc := http.NewResponseController(w)
		setBodyDeadline(rc, g.limits, g.limits.Body)
		b := &guardedBody{ReadCloser: r.Body, rc: rc, release: func() { <-g.slots }}
		defer b.done()
		r.Body = b
		next.ServeHTTP(w, r)
	})
}

func (g *bodyGuard) acquire() bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(g.limits.BusyWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

// withBodyTimeout gives a route's request bodies d instead of the default deadline (an upload sized for its limit).
func withBodyTimeout(l httpLimits, d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hasBody(r) {
			setBodyDeadline(http.NewResponseController(w), l, d)
		}
		next.ServeHTTP(w, r)
	})
}

// setBodyDeadline lets the body take d from now and the response l.Write after that. Writers that cannot take
// deadlines (httptest's recorder) go without.
func setBodyDeadline(rc *http.ResponseController, l httpLimits, d time.Duration) {
	deadline := time.Now().Add(d)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline.Add(l.Write))
}

// guardedBody gives its slot back at the end of the body (or of the handler) and then lifts the read deadline:
// the server keeps reading the connection to notice the client leave, and a deadline passing then would cancel
// the request's context while the handler stores the message.
type guardedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	release func()
	once    sync.Once
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done()
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (b *guardedBody) done() { b.once.Do(b.release) }
