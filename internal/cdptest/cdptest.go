// Package cdptest drives headless Chromium over the Chrome DevTools Protocol for browser tests: just enough to
// open a page, run JavaScript in it and wait for what it shows. Start skips the test when no Chromium is
// installed.
package cdptest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Page is one browser page under the test's control.
type Page struct {
	t    testing.TB
	conn *websocket.Conn
	id   int
}

// Call sends a DevTools command and returns its result; an error fails the test.
func (c *Page) Call(method string, params any) json.RawMessage {
	c.t.Helper()
	c.id++
	if err := c.conn.WriteJSON(map[string]any{"id": c.id, "method": method, "params": params}); err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{ Message string }
		}
		c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		if err := c.conn.ReadJSON(&msg); err != nil {
			c.t.Fatalf("%s: %v", method, err)
		}
		if msg.ID != c.id {
			continue // An event.
		}
		if msg.Error != nil {
			c.t.Fatalf("%s: %s", method, msg.Error.Message)
		}
		return msg.Result
	}
}

// Eval runs JavaScript in the page (awaiting a promise) and returns its value as a string.
func (c *Page) Eval(js string) string {
	c.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct{ Text string } `json:"exceptionDetails"`
	}
	json.Unmarshal(c.Call("Runtime.evaluate", map[string]any{"expression": js, "returnByValue": true, "awaitPromise": true}), &res)
	if res.ExceptionDetails != nil {
		c.t.Fatalf("eval %q: %s", js, res.ExceptionDetails.Text)
	}
	return fmt.Sprint(res.Result.Value)
}

// WaitFor polls a JavaScript condition until it is true; what the page shows decides, not a clock.
func (c *Page) WaitFor(what, js string) {
	c.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for c.Eval(js) != "true" {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s; page text:\n%s", what, c.Eval("document.body.innerText"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Navigate opens url and waits until it has loaded.
func (c *Page) Navigate(url string) {
	c.t.Helper()
	c.Call("Page.navigate", map[string]any{"url": url})
	c.WaitFor("page load", `document.readyState === "complete" && location.href.startsWith(`+JSString(url[:min(len(url), 20)])+`)`)
}

// Screenshot writes the page as a PNG.
func (c *Page) Screenshot(path string) {
	c.t.Helper()
	var res struct{ Data string }
	json.Unmarshal(c.Call("Page.captureScreenshot", map[string]any{"format": "png"}), &res)
	b, _ := base64.StdEncoding.DecodeString(res.Data)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// JSString is s as a JavaScript string literal.
func JSString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Start runs headless Chromium for the rest of the test and connects to its first page. It skips the test
// when no Chromium is on PATH.
func Start(t testing.TB) *Page {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("no chromium on PATH; .ci/run installs Debian's chromium")
	}
	// Not t.TempDir: Chromium's helper processes may still write there after it is killed, failing the cleanup.
	profile, err := os.MkdirTemp("", "difybot-chromium-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) })
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,900",
		"--user-data-dir="+profile, "--remote-debugging-port=0", "about:blank")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	found := make(chan string, 1)
	go func() { // Ends when Chromium exits and closes stderr.
		re := regexp.MustCompile(`ws://127\.0\.0\.1:(\d+)/`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	var port string
	select {
	case port = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not start")
	}
	res, err := http.Get("http://127.0.0.1:" + port + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	var targets []struct{ Type, WebSocketDebuggerURL string }
	json.NewDecoder(res.Body).Decode(&targets)
	res.Body.Close()
	for _, tg := range targets {
		if tg.Type == "page" {
			conn, _, err := websocket.DefaultDialer.Dial(tg.WebSocketDebuggerURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			c := &Page{t: t, conn: conn}
			c.Call("Page.enable", nil)
			return c
		}
	}
	t.Fatal("chromium has no page")
	return nil
}
