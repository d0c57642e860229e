package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/internal/cdptest"
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

// TestDemoInABrowser is issue 4's walk-through: the demo, the web chat, the admin page and the breaker switch,
// driven in headless Chromium. Screenshots go to $DIFYBOT_SCREENSHOTS when set.
func TestDemoInABrowser(t *testing.T) {
	c, shots := startBrowser(t)
	if w, err := strconv.Atoi(os.Getenv("DIFYBOT_SCREENSHOT_WIDTH")); err == nil && w > 0 {
		// A phone's width (390) or a laptop's (1280), to look at the pages as people will.
		c.Call("Emulation.setDeviceMetricsOverride", map[string]any{"width": w, "height": 900, "deviceScaleFactor": 1, "mobile": w < 600})
	}

	base, token := startDemo(t)

	// 1. Send a photo in the web chat: the simulator's answer comes back.
	c.Navigate(base + "/")
	var doc struct{ Root struct{ NodeID int } }
	json.Unmarshal(c.Call("DOM.getDocument", nil), &doc)
	var q struct{ NodeID int }
	json.Unmarshal(c.Call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#image"}), &q)
	c.Call("DOM.setFileInputFiles", map[string]any{"nodeId": q.NodeID, "files": []string{writePNG(t, 320, 240)}})
	c.Eval(`document.getElementById("text").value = "what is in this photo?"; document.getElementById("form").requestSubmit(); true`)
	c.WaitFor("the answer", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("PNG image, 320×240 px"))`)
	runID := c.Eval(`document.querySelector(".msg.bot").dataset.run`)
	c.Screenshot(filepath.Join(shots, "1-web-chat.png"))

	// 2. The admin page shows that run's 8 steps and its workflow nodes.
	c.Navigate(base + "/admin/#run=" + runID)
	c.Eval(`document.getElementById("token").value = ` + cdptest.JSString(token) + `; document.getElementById("token-save").click(); true`)
	c.WaitFor("the run's 8 steps", `document.querySelectorAll("#run-steps tbody tr").length === 8 && document.querySelector("#run-steps").innerText.includes("[8/8]")`)
	c.WaitFor("the workflow nodes", `document.querySelectorAll("#run-nodes tbody tr").length >= 3 && document.querySelector("#run-nodes").innerText.includes("Analyse image")`)
	c.Screenshot(filepath.Join(shots, "2-admin-run.png"))

	// 3. A failed run: switch the simulator on the admin page, send, open the run and read its diagnosis.
	c.WaitFor("the scenario switch", `!document.getElementById("sim").classList.contains("hidden") && document.querySelectorAll("#scenario option").length > 10`)
	c.Eval(`document.getElementById("scenario").value = "plugin_error"; document.getElementById("scenario-apply").click(); true`)
	c.WaitFor("the scenario change", `document.getElementById("scenario-message").innerText.length > 0 || document.getElementById("scenario").value === "plugin_error"`)
	waitScenario(t, base, token, "plugin_error")
	c.Navigate(base + "/")
	c.Eval(`document.getElementById("text").value = "and this?"; document.getElementById("form").requestSubmit(); true`)
	c.WaitFor("the diagnosis", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("dify_plugin_error"))`)
	failedID := c.Eval(`[...document.querySelectorAll(".msg.bot")].pop().dataset.run`)
	c.Navigate(base + "/admin/#run=" + failedID)
	c.WaitFor("the failed run's diagnosis", `document.getElementById("run-code").innerText.includes("dify_plugin_error") && document.getElementById("run-checks").innerText.length > 20`)
	c.Screenshot(filepath.Join(shots, "3-admin-failed-run.png"))
	putJSON(t, base+"/admin/sim/scenario", token, `{"scenario":"ok"}`)

	// 4. Flip the breaker to maintenance on the page: the next message is held with the maintenance notice.
	c.Eval(`document.getElementById("breaker-mode").value = "open"; document.getElementById("breaker-reason").value = "browser test: upgrading Dify"; document.getElementById("breaker-apply").click(); true`)
	c.WaitFor("the breaker forced open", `document.getElementById("breaker-state").innerText.includes("forced-open") && document.getElementById("breaker-history").innerText.includes("browser test")`)
	c.Screenshot(filepath.Join(shots, "4-admin-breaker.png"))
	c.Navigate(base + "/")
	c.Eval(`document.getElementById("text").value = "are you there?"; document.getElementById("form").requestSubmit(); true`)
	c.WaitFor("the maintenance notice", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "false" && e.innerText.includes("maintenance"))`)

	// 5. Back to auto: the held message is answered.
	putJSON(t, base+"/admin/breaker", token, `{"mode":"auto","reason":"browser test: done"}`)
	c.WaitFor("the held message answered", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("You said: are you there?"))`)
	c.Screenshot(filepath.Join(shots, "5-web-chat-after-maintenance.png"))

	// 6. Switch the app's shape on the admin page to one that requires the question: a photo alone is asked for
	// it with Dify's suggested questions as chips, and a tapped chip completes the request in one run.
	c.Navigate(base + "/admin/")
	c.WaitFor("the shape switch", `!document.getElementById("shape-box").classList.contains("hidden") && document.querySelectorAll("#shape option").length > 3`)
	c.Eval(`document.getElementById("shape").value = "required_text"; document.getElementById("shape-apply").click(); true`)
	c.WaitFor("the shape change", `document.getElementById("shape-message").innerText.includes("required_text")`)
	c.Screenshot(filepath.Join(shots, "6-admin-shape.png"))
	c.Navigate(base + "/")
	json.Unmarshal(c.Call("DOM.getDocument", nil), &doc)
	json.Unmarshal(c.Call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#image"}), &q)
	c.Call("DOM.setFileInputFiles", map[string]any{"nodeId": q.NodeID, "files": []string{writePNG(t, 64, 48)}})
	c.Eval(`document.getElementById("text").value = ""; document.getElementById("form").requestSubmit(); true`)
	c.WaitFor("the question with choices", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("Got your photo. What would you like to know?") && e.querySelectorAll(".chip").length === 3)`)
	c.Screenshot(filepath.Join(shots, "7-web-chat-question.png"))
	c.Eval(`[...document.querySelectorAll(".chip")].find(b => b.textContent === "Is anything damaged?").click(); true`)
	c.WaitFor("the answer with the photo and the chip's question", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("PNG image, 64×48 px") && e.innerText.includes("You said: Is anything damaged?") && e.innerText.includes('question="Is anything damaged?", photo=1 file'))`)
	c.Screenshot(filepath.Join(shots, "8-web-chat-answer.png"))
}

// startBrowser starts Chromium (skipping the test in -short mode or without one) and returns the directory for
// screenshots: $DIFYBOT_SCREENSHOTS, else a temporary one.
func startBrowser(t *testing.T) (*cdptest.Page, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("drives a browser")
	}
	c := cdptest.Start(t)
	shots := os.Getenv("DIFYBOT_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	return c, shots
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
