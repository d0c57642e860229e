package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/internal/loadtest"
	"github.com/difybot/difybot/platforms/web"
)

// stalled is one raw connection that sent a request's headers and part of its body, then stopped sending, as a
// slow or hostile client does. It records when, and with what status line, the server ended it.
type stalled struct {
	start  time.Time
	sent   chan int // Bytes of body written, once writing stopped.
	closed chan struct{}
	after  time.Duration // From start to the server closing the connection.
	status string
}

// stall connects to addr and POSTs path declaring size bytes of body; it writes the body's first send bytes
// at once, then one byte every drip (0: no more), never the whole body.
func stall(t testing.TB, addr, path string, size, send int, drip time.Duration) *stalled {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &stalled{start: time.Now(), sent: make(chan int, 1), closed: make(chan struct{})}
	go func() { // Ends when the server closes the connection (or the test does).
		n := 0
		defer func() { s.sent <- n }()
		head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: difybot\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, size)
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		k, err := c.Write(bytes.Repeat([]byte(" "), send))
		n += k
		if err != nil || drip == 0 {
			return
		}
		for n < size-1 {
			select {
			case <-s.closed:
				return
			case <-time.After(drip):
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
			n++
		}
	}()
	go func() {
		line, _ := bufio.NewReader(c).ReadString('\n')
		s.status = strings.TrimSpace(line)
		io.Copy(io.Discard, c)
		s.after = time.Since(s.start)
		close(s.closed)
	}()
	return s
}

// wait reports whether the server closed the connection within this long of its start.
func (s *stalled) wait(within time.Duration) bool {
	select {
	case <-s.closed:
		return true
	case <-time.After(within - time.Since(s.start)):
		return false
	}
}

// slowReader gives data a chunk at a time, one chunk every every.
type slowReader struct {
	data  []byte
	chunk int
	every time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.every)
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestServerCutsStalledClients runs serve's handler on a real listener with short limits: 200 connections that
// send part of a body and stop, and one that sends a byte every 2 s, are closed at the body deadline, those
// over the cap at once with a 503; health checks answer meanwhile; an idle keep-alive is closed; and what must
// last longer is not cut: an upload on its route's longer deadline, and the web chat's event stream past the
// write timeout.
func TestServerCutsStalledClients(t *testing.T) {
	if testing.Short() {
		t.Skip("holds connections for seconds")
	}
	sim := difytest.NewServer(difytest.Options{Latency: 700 * time.Millisecond, PingEvery: 100 * time.Millisecond})
	defer sim.Close()
	sys := newSystem(t, map[string]string{"DIFY_BASE_URL": sim.URL(), "DIFY_API_KEY": "app-test", "HTTP_ADDR": "127.0.0.1:0",
		"SLACK_BOT_TOKEN": loadtest.SlackBotToken, "SLACK_SIGNING_SECRET": loadtest.SlackSigningSecret, "SLACK_API_URL": "http://127.0.0.1:1/api/",
		"LINE_CHANNEL_SECRET": loadtest.LINEChannelSecret, "LINE_CHANNEL_TOKEN": loadtest.LINEChannelToken,
		"WEB_CHAT": "on", "ADMIN_TOKEN": testAdminToken})
	lim := httpLimits{ReadHeader: 2 * time.Second, Body: 3 * time.Second, Write: time.Second, Idle: 500 * time.Millisecond,
		Bodies: 8, BusyWait: 50 * time.Millisecond}
	sys.limits = lim
	handler, err := sys.routes()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc, served := make(chan string, 1), make(chan error, 1)
	go func() { served <- sys.serve(ctx, handler, func(addr string) { addrc <- addr }) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	addr := <-addrc
	const slack = time.Second // Scheduling, and the server's answer after a deadline.

	// A byte every 2 s: an absolute deadline, not an idle one, ends it.
	slow := stall(t, addr, "/line/webhook", 100, 1, 2*time.Second)
	time.Sleep(50 * time.Millisecond) // It has its slot before the others come.
	var flood []*stalled
	for i := range 200 {
		path := []string{"/slack/events", "/line/webhook", "/slack/interactions"}[i%3]
		flood = append(flood, stall(t, addr, path, 1<<20, 256<<10, 0))
	}
	time.Sleep(200 * time.Millisecond) // Those over the cap have waited out BusyWait.

	// Meanwhile: health checks are not bodies and answer; another body is refused at once, with Retry-After.
	start := time.Now()
	res, err := http.Get("http://" + addr + "/healthz")
	if err != nil || res.StatusCode != http.StatusOK || time.Since(start) > 500*time.Millisecond {
		t.Errorf("/healthz during the flood: %v %v after %s", res, err, time.Since(start))
	}
	res.Body.Close()
	start = time.Now()
	res, err = http.Post("http://"+addr+"/slack/events", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || time.Since(start) > 500*time.Millisecond {
		t.Errorf("a body over the cap: %d Retry-After %q after %s, want a quick 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"), time.Since(start))
	}

	// An idle keep-alive connection is closed after IdleTimeout.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: difybot\r\n\r\n")
	br := bufio.NewReader(idle)
	if res, err := http.ReadResponse(br, nil); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("keep-alive request: %v %v", res, err)
	} else {
		io.Copy(io.Discard, res.Body)
	}
	served0 := time.Now()
	idle.SetReadDeadline(served0.Add(lim.Idle + 3*slack))
	if _, err := br.ReadByte(); err == nil {
		t.Error("the server sent more on an idle connection")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("an idle keep-alive connection was still open after %s", time.Since(served0).Round(time.Millisecond))
	}
	if d := time.Since(served0); d < lim.Idle-100*time.Millisecond || d > lim.Idle+slack {
		t.Errorf("idle keep-alive closed after %s, want about %s", d, lim.Idle)
	}

	refused, cut := 0, 0
	for _, s := range flood {
		if !s.wait(lim.Body + slack) {
			t.Fatalf("a stalled connection was still open after %s", lim.Body+slack)
		}
		switch {
		case s.after < lim.Body-100*time.Millisecond:
			refused++
			if s.status != "" && !strings.Contains(s.status, "503") {
				t.Errorf("closed early with %q, want 503", s.status)
			}
		default:
			cut++
		}
	}
	if cut > lim.Bodies || refused < len(flood)-lim.Bodies {
		t.Errorf("%d connections cut at the deadline, %d refused; want at most %d read at once", cut, refused, lim.Bodies)
	}
	if !slow.wait(lim.Body + slack) {
		t.Fatalf("the slow body was still open after %s", lim.Body+slack)
	}
	if sent := <-slow.sent; slow.after < lim.Body-100*time.Millisecond || sent < 2 {
		t.Errorf("the slow body was closed after %s with %d bytes sent; want the %s deadline after its drip", slow.after, sent, lim.Body)
	}
	t.Logf("200 stalled connections: %d refused at once, %d cut at the %s deadline; the slow one cut after %s",
		refused, cut, lim.Body, slow.after.Round(10*time.Millisecond))

	// Slots are free again: an unsigned request is read and refused for its signature.
	res, err = http.Post("http://"+addr+"/slack/events", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("after the flood: %d, want 401", res.StatusCode)
	}

	// The web chat's upload takes longer than the default body deadline, on its route's own.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("id", web.NewID())
	mw.WriteField("session", "session-"+web.NewID())
	mw.WriteField("text", "what is this?")
	fw, _ := mw.CreateFormFile("image", "photo.png")
	fw.Write(pngFile(t))
	mw.Close()
	body := &slowReader{data: form.Bytes(), chunk: form.Len()/8 + 1, every: (lim.Body + 500*time.Millisecond) / 8}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/messages", body)
	req.ContentLength = int64(form.Len())
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	start = time.Now()
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct {
		RunID string `json:"run_id"`
	}
	decodeJSON(t, res, &accepted)
	if res.StatusCode != http.StatusAccepted || time.Since(start) < lim.Body {
		t.Fatalf("slow upload: %d after %s, want 202 after more than %s", res.StatusCode, time.Since(start), lim.Body)
	}

	// Its event stream lasts the whole run (three nodes of 700 ms), past the 1 s write timeout.
	start = time.Now()
	ev := (&proc{addr: addr}).finalReply(t, accepted.RunID)
	if !strings.Contains(ev.Text, "PNG image") || time.Since(start) < lim.Write {
		t.Errorf("final reply after %s: %+v", time.Since(start), ev)
	}
}

func decodeJSON(t testing.TB, res *http.Response, v any) {
	t.Helper()
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%d %s: %v", res.StatusCode, b, err)
	}
}

// TestStalledBodiesKeepMemoryLow is the attack of issue 13 against the real binary, with serve's own limits:
// 200 unsigned connections each send 1 MB of a webhook body and stall. Before the limits, RSS went from 36 to
// 255 MiB and stayed there with every connection open.
func TestStalledBodiesKeepMemoryLow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real process")
	}
	fakes := loadtest.NewFakes()
	defer fakes.Close()
	sim := loadtest.NewSim(difytest.Options{})
	defer sim.Close()
	env := fakes.Env()
	env["DIFY_BASE_URL"], env["DIFY_API_KEY"], env["DATA_DIR"] = sim.URL(), "app-test", t.TempDir()
	srv, err := loadtest.StartServe(t.Context(), binary(t), env, filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Kill()
	before, err := loadtest.ReadMem(srv.PID())
	if err != nil {
		t.Fatal(err)
	}
	lim := defaultLimits()

	var flood []*stalled
	for i := range 200 {
		path := []string{"/slack/events", "/line/webhook"}[i%2]
		flood = append(flood, stall(t, srv.Addr, path, 1<<20, 1_000_000, 0))
	}
	var mu sync.Mutex
	peak := before.RSS
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if m, err := loadtest.ReadMem(srv.PID()); err == nil {
				mu.Lock()
				peak = max(peak, m.RSS, m.HWM)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	refused, cut, open := 0, 0, 0
	for _, s := range flood {
		switch {
		case !s.wait(lim.Body + 2*time.Second):
			open++
		case s.after < lim.Body-time.Second:
			refused++
		default:
			cut++
		}
	}
	close(stop)
	<-sampled
	t.Logf("RSS %s before, peak %s; 200 stalled 1 MB bodies: %d refused at once, %d cut at the %s deadline, %d still open",
		loadtest.MB(before.RSS), loadtest.MB(peak), refused, cut, lim.Body, open)
	if open > 0 {
		t.Errorf("%d stalled connections still open after %s", open, lim.Body+2*time.Second)
	}
	if peak >= 100e6 {
		t.Errorf("peak RSS %s, want under 100 MB", loadtest.MB(peak))
	}
	if cut > lim.Bodies {
		t.Errorf("%d bodies held to the deadline, want at most %d", cut, lim.Bodies)
	}
	if res, err := http.Get(srv.URL() + "/healthz"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("/healthz after the flood: %v %v", res, err)
	}
}
