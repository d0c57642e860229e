package loadtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Client is an HTTP client for sending load: enough idle connections that an open-loop sender does not
// spend its time dialling, and a timeout so a hung server cannot hold a sender forever.
func Client() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
}

// Shot is one request of a load run.
type Shot struct {
	I       int
	Sent    time.Time     // When the request left.
	Lag     time.Duration // How late it left against the schedule (the sender's own delay).
	Latency time.Duration // Until the response's status line and body were read.
	Status  int           // 0 when the request failed.
	Err     error
	Skipped bool // Not sent: maxInFlight requests were already waiting.
}

// Fire sends n requests open-loop: request i leaves at start + i/rate whether or not earlier ones were
// answered, so a slow server meets the same arrival rate a platform would send. At most maxInFlight wait
// at once; beyond that a request is skipped and counted, which bounds the sender's own memory.
func Fire(ctx context.Context, c *http.Client, rate float64, n, maxInFlight int, mk func(i int) (*http.Request, error)) []Shot {
	shots := make([]Shot, n)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				shots = shots[:i]
				wg.Wait()
				return shots
			case <-time.After(d):
			}
		}
		select {
		case sem <- struct{}{}:
		default:
			shots[i] = Shot{I: i, Skipped: true, Sent: time.Now()}
			continue
		}
		req, err := mk(i)
		if err != nil {
			<-sem
			shots[i] = Shot{I: i, Err: err}
			continue
		}
		sent := time.Now()
		shots[i] = Shot{I: i, Sent: sent, Lag: sent.Sub(due)}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := c.Do(req.WithContext(ctx))
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				shots[i].Status = res.StatusCode
			}
			shots[i].Latency, shots[i].Err = time.Since(sent), err
		})
	}
	wg.Wait()
	return shots
}

// Dist summarises durations.
type Dist struct {
	N                  int
	P50, P90, P99, Max time.Duration
	Mean               time.Duration
}

// Summarize returns the percentiles of ds (nearest rank).
func Summarize(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	at := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Dist{N: len(s), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: s[len(s)-1], Mean: sum / time.Duration(len(s))}
}

// Ms formats a duration in milliseconds with a precision that suits its size.
func Ms(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// MB formats bytes as MB (10^6).
func MB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
