package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// syncBuffer is a bytes.Buffer safe to write from the demo and read from the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cdp is just enough of the Chrome DevTools Protocol to drive one page.
type cdp struct {
	t    testing.TB
	conn *websocket.Conn
	id   int
}

func (c *cdp) call(method string, params any) json.RawMessage {
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

// eval runs JavaScript in the page and returns its value as a string.
func (c *cdp) eval(js string) string {
	c.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct{ Text string } `json:"exceptionDetails"`
	}
	json.Unmarshal(c.call("Runtime.evaluate", map[string]any{"expression": js, "returnByValue": true, "awaitPromise": true}), &res)
	if res.ExceptionDetails != nil {
		c.t.Fatalf("eval %q: %s", js, res.ExceptionDetails.Text)
	}
	return fmt.Sprint(res.Result.Value)
}

// waitFor polls a JavaScript condition until it is "true"; what the page shows decides, not a clock.
func (c *cdp) waitFor(what, js string) {
	c.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for c.eval(js) != "true" {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s; page text:\n%s", what, c.eval("document.body.innerText"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cdp) navigate(url string) {
	c.call("Page.navigate", map[string]any{"url": url})
	c.waitFor("page load", `document.readyState === "complete" && location.href.startsWith(`+jsString(url[:20])+`)`)
}

func (c *cdp) screenshot(path string) {
	var res struct{ Data string }
	json.Unmarshal(c.call("Page.captureScreenshot", map[string]any{"format": "png"}), &res)
	b, _ := base64.StdEncoding.DecodeString(res.Data)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// startChromium runs headless Chromium and connects to its first page.
func startChromium(t testing.TB) *cdp {
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
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := regexp.MustCompile(`ws://127\.0\.0\.1:(\d+)/`).FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
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
			c := &cdp{t: t, conn: conn}
			c.call("Page.enable", nil)
			return c
		}
	}
	t.Fatal("chromium has no page")
	return nil
}

// TestDemoInABrowser is issue 4's walk-through: the demo, the web chat, the admin page and the breaker switch,
// driven in headless Chromium. Screenshots go to $DIFYBOT_SCREENSHOTS when set.
func TestDemoInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser")
	}
	c := startChromium(t)
	shots := os.Getenv("DIFYBOT_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}

	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	done := make(chan error, 1)
	go func() { // Ends when ctx is cancelled at the end of the test.
		done <- run(ctx, []string{"demo", "-addr", "127.0.0.1:0"}, env(map[string]string{"DATA_DIR": t.TempDir(), "LOG_LEVEL": "warn"}), nil, &stdout, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	})
	var base, token string
	deadline := time.Now().Add(30 * time.Second)
	for base == "" || token == "" {
		out := stdout.String()
		if m := regexp.MustCompile(`web chat\s+(http://\S+)/`).FindStringSubmatch(out); m != nil {
			base = m[1]
		}
		if m := regexp.MustCompile(`admin token: (\S+)`).FindStringSubmatch(out); m != nil {
			token = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not print its URLs:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// 1. Send a photo in the web chat: the simulator's answer comes back.
	c.navigate(base + "/")
	var doc struct{ Root struct{ NodeID int } }
	json.Unmarshal(c.call("DOM.getDocument", nil), &doc)
	var q struct{ NodeID int }
	json.Unmarshal(c.call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#image"}), &q)
	c.call("DOM.setFileInputFiles", map[string]any{"nodeId": q.NodeID, "files": []string{writePNG(t, 320, 240)}})
	c.eval(`document.getElementById("text").value = "what is in this photo?"; document.getElementById("form").requestSubmit(); true`)
	c.waitFor("the answer", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("PNG image, 320×240 px"))`)
	runID := c.eval(`document.querySelector(".msg.bot").dataset.run`)
	c.screenshot(filepath.Join(shots, "1-web-chat.png"))

	// 2. The admin page shows that run's 8 steps and its workflow nodes.
	c.navigate(base + "/admin/#run=" + runID)
	c.eval(`document.getElementById("token").value = ` + jsString(token) + `; document.getElementById("token-save").click(); true`)
	c.waitFor("the run's 8 steps", `document.querySelectorAll("#run-steps tbody tr").length === 8 && document.querySelector("#run-steps").innerText.includes("[8/8]")`)
	c.waitFor("the workflow nodes", `document.querySelectorAll("#run-nodes tbody tr").length >= 3 && document.querySelector("#run-nodes").innerText.includes("Analyse image")`)
	c.screenshot(filepath.Join(shots, "2-admin-run.png"))

	// 3. A failed run: switch the simulator on the admin page, send, open the run and read its diagnosis.
	c.waitFor("the scenario switch", `!document.getElementById("sim").classList.contains("hidden") && document.querySelectorAll("#scenario option").length > 10`)
	c.eval(`document.getElementById("scenario").value = "plugin_error"; document.getElementById("scenario-apply").click(); true`)
	c.waitFor("the scenario change", `document.getElementById("scenario-message").innerText.length > 0 || document.getElementById("scenario").value === "plugin_error"`)
	waitScenario(t, base, token, "plugin_error")
	c.navigate(base + "/")
	c.eval(`document.getElementById("text").value = "and this?"; document.getElementById("form").requestSubmit(); true`)
	c.waitFor("the diagnosis", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("dify_plugin_error"))`)
	failedID := c.eval(`[...document.querySelectorAll(".msg.bot")].pop().dataset.run`)
	c.navigate(base + "/admin/#run=" + failedID)
	c.waitFor("the failed run's diagnosis", `document.getElementById("run-code").innerText.includes("dify_plugin_error") && document.getElementById("run-checks").innerText.length > 20`)
	c.screenshot(filepath.Join(shots, "3-admin-failed-run.png"))
	putJSON(t, base+"/admin/sim/scenario", token, `{"scenario":"ok"}`)

	// 4. Flip the breaker to maintenance on the page: the next message is held with the maintenance notice.
	c.eval(`document.getElementById("breaker-mode").value = "open"; document.getElementById("breaker-reason").value = "browser test: upgrading Dify"; document.getElementById("breaker-apply").click(); true`)
	c.waitFor("the breaker forced open", `document.getElementById("breaker-state").innerText.includes("forced-open") && document.getElementById("breaker-history").innerText.includes("browser test")`)
	c.screenshot(filepath.Join(shots, "4-admin-breaker.png"))
	c.navigate(base + "/")
	c.eval(`document.getElementById("text").value = "are you there?"; document.getElementById("form").requestSubmit(); true`)
	c.waitFor("the maintenance notice", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "false" && e.innerText.includes("maintenance"))`)

	// 5. Back to auto: the held message is answered.
	putJSON(t, base+"/admin/breaker", token, `{"mode":"auto","reason":"browser test: done"}`)
	c.waitFor("the held message answered", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("You said: are you there?"))`)
	c.screenshot(filepath.Join(shots, "5-web-chat-after-maintenance.png"))

	// 6. Switch the app's shape on the admin page to one that requires the question: a photo alone is asked for
	// it with Dify's suggested questions as chips, and a tapped chip completes the request in one run.
	c.navigate(base + "/admin/")
	c.waitFor("the shape switch", `!document.getElementById("shape-box").classList.contains("hidden") && document.querySelectorAll("#shape option").length > 3`)
	c.eval(`document.getElementById("shape").value = "required_text"; document.getElementById("shape-apply").click(); true`)
	c.waitFor("the shape change", `document.getElementById("shape-message").innerText.includes("required_text")`)
	c.screenshot(filepath.Join(shots, "6-admin-shape.png"))
	c.navigate(base + "/")
	json.Unmarshal(c.call("DOM.getDocument", nil), &doc)
	json.Unmarshal(c.call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#image"}), &q)
	c.call("DOM.setFileInputFiles", map[string]any{"nodeId": q.NodeID, "files": []string{writePNG(t, 64, 48)}})
	c.eval(`document.getElementById("text").value = ""; document.getElementById("form").requestSubmit(); true`)
	c.waitFor("the question with choices", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("Got your photo. What would you like to know?") && e.querySelectorAll(".chip").length === 3)`)
	c.screenshot(filepath.Join(shots, "7-web-chat-question.png"))
	c.eval(`[...document.querySelectorAll(".chip")].find(b => b.textContent === "Is anything damaged?").click(); true`)
	c.waitFor("the answer with the photo and the chip's question", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("PNG image, 64×48 px") && e.innerText.includes("You said: Is anything damaged?") && e.innerText.includes('question="Is anything damaged?", photo=1 file'))`)
	c.screenshot(filepath.Join(shots, "8-web-chat-answer.png"))
}

func putJSON(t testing.TB, url, token, body string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("PUT %s: %d %s", url, res.StatusCode, b)
	}
}

func waitScenario(t testing.TB, base, token, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", base+"/admin/sim/scenario", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			var out struct{ Scenario string }
			json.NewDecoder(res.Body).Decode(&out)
			res.Body.Close()
			if out.Scenario == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the simulator did not switch to %s", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
