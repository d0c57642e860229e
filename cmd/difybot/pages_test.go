package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/internal/cdptest"
	"github.com/difybot/difybot/platforms/web"
)

// TestPagesAtTwoSizes is issue 17's browser check of both pages at a laptop's size and a phone's: nothing wider
// than the window, the answer in view once its photo has loaded, the admin page following a run without a
// click, and the debug bundle downloaded without a secret in it. Screenshots go to $DIFYBOT_SCREENSHOTS.
func TestPagesAtTwoSizes(t *testing.T) {
	c, shots := startBrowser(t)
	base, token := startDemo(t)
	downloads := t.TempDir()
	c.Call("Browser.setDownloadBehavior", map[string]any{"behavior": "allow", "downloadPath": downloads})

	// The person pastes the admin token into the chat and the workflow echoes it: the bundle must not.
	leakRun := sendWeb(t, base, "my token is "+token)
	// A failed run, whose diagnosis quotes the plugin's raw error: escaped JSON, one long token.
	waitStatus(t, base, token, leakRun, "succeeded")
	putJSON(t, base+"/admin/sim/scenario", token, `{"scenario":"plugin_error"}`)
	waitScenario(t, base, token, "plugin_error")
	failedRun := sendWeb(t, base, "will fail")
	waitStatus(t, base, token, failedRun, "failed")
	putJSON(t, base+"/admin/sim/scenario", token, `{"scenario":"ok"}`)
	waitScenario(t, base, token, "ok")

	for _, size := range []struct {
		name          string
		width, height int
	}{{"laptop", 1280, 800}, {"phone", 390, 844}} {
		func() { // Not a subtest: the page belongs to the test, and a failure in a subtest could not stop it.
			c.Call("Emulation.setDeviceMetricsOverride", map[string]any{"width": size.width, "height": size.height, "deviceScaleFactor": 1, "mobile": size.width < 600})
			shot := func(name string) { c.Screenshot(filepath.Join(shots, fmt.Sprintf("17-%s-%s.png", size.name, name))) }

			// Web chat: a conversation longer than the window, then a photo. The answer must end up in view,
			// above the fixed form, after the photo's thumbnail has loaded and pushed everything down.
			c.Navigate(base + "/")
			placeholder := c.Eval(`document.getElementById("text").placeholder`)
			if narrow := size.width < 600; narrow == strings.Contains(placeholder, "Enter to send") {
				t.Errorf("placeholder at %d px: %q", size.width, placeholder)
			}
			c.Eval(`for (let i = 0; i < 14; i++) { const d = document.createElement("div"); d.className = "msg bot"; d.textContent = "earlier message " + i; document.getElementById("log").appendChild(d); } true`)
			var doc struct{ Root struct{ NodeID int } }
			json.Unmarshal(c.Call("DOM.getDocument", nil), &doc)
			var q struct{ NodeID int }
			json.Unmarshal(c.Call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#image"}), &q)
			c.Call("DOM.setFileInputFiles", map[string]any{"nodeId": q.NodeID, "files": []string{writePNG(t, 400, 600)}})
			c.Eval(`document.getElementById("text").value = "what is in this photo?"; document.getElementById("form").requestSubmit(); true`)
			c.WaitFor("the answer", `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes("PNG image, 400×600 px"))`)
			c.WaitFor("the thumbnail loaded", `[...document.querySelectorAll(".msg.me img.thumb")].every(i => i.complete && i.naturalWidth > 0)`)
			c.WaitFor("the answer in view above the form", `(() => {
				const last = [...document.querySelectorAll(".msg.bot")].pop().getBoundingClientRect();
				const form = document.getElementById("form").getBoundingClientRect();
				return document.documentElement.scrollHeight > innerHeight && last.top >= 0 && last.bottom <= form.top + 1;
			})()`)
			noOverflow(t, c, size.name+" web chat")
			shot("web-chat")

			// Admin page: a run held by maintenance is shown held; when maintenance ends (not on this page),
			// the page shows it succeeded by itself.
			putJSON(t, base+"/admin/breaker", token, `{"mode":"open","reason":"pages test"}`)
			held := sendWeb(t, base, "held for a moment")
			c.Navigate(base + "/admin/#run=" + held)
			c.Eval(`if (!sessionStorage.getItem("difybot-admin-token")) { document.getElementById("token").value = ` + cdptest.JSString(token) + `; document.getElementById("token-save").click(); } true`)
			c.WaitFor("the held run", `document.querySelector('#runs-body tr[data-run="`+held+`"]')?.innerText.includes("held") && document.getElementById("run-facts").innerText.includes("held")`)
			putJSON(t, base+"/admin/breaker", token, `{"mode":"auto","reason":"pages test done"}`)
			c.WaitFor("the run succeeded, without a click", `document.querySelector('#runs-body tr[data-run="`+held+`"]')?.innerText.includes("succeeded") && document.getElementById("run-facts").innerText.includes("succeeded") && document.getElementById("breaker-state").innerText === "closed"`)
			if size.width < 600 {
				if d := c.Eval(`getComputedStyle(document.querySelector("#runs thead")).display`); d != "none" {
					t.Errorf("the runs table at %d px is a table (thead %s), not cards", size.width, d)
				}
			}
			noOverflow(t, c, size.name+" admin page")
			shot("admin")

			// The debug bundle of the run whose reply echoed the token.
			c.Navigate(base + "/admin/#run=" + leakRun)
			c.WaitFor("the run with the echoed token", `!document.getElementById("run-bundle").classList.contains("hidden") && document.getElementById("run-title").innerText.includes(`+cdptest.JSString(leakRun)+`)`)
			noOverflow(t, c, size.name+" admin run view")
			shot("admin-run")

			file := filepath.Join(downloads, "difybot-run-"+leakRun+".json")
			os.Remove(file)
			c.Eval(`document.getElementById("run-bundle").click(); true`)
			b := waitFile(t, file)
			var bundle struct {
				Kind  string
				Steps []any
				Run   struct{ Reply string }
				About struct {
					Versions map[string]string
					App      map[string]any
					Config   map[string]any
				}
			}
			if err := json.Unmarshal(b, &bundle); err != nil {
				t.Fatalf("bundle: %v\n%s", err, b)
			}
			if bundle.Kind != "difybot debug bundle" || len(bundle.Steps) != 5 || bundle.About.Versions["go"] == "" ||
				bundle.About.App["ImageInput"] != "photo" || !strings.Contains(bundle.Run.Reply, "[redacted]") {
				t.Errorf("bundle: %s", b)
			}
			for _, secret := range []string{token, "app-test"} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s: the bundle holds the secret %q", size.name, secret)
				}
			}

			c.Navigate(base + "/admin/#run=" + failedRun)
			c.WaitFor("the failed run's diagnosis", `!document.getElementById("run-diagnosis").classList.contains("hidden") && document.getElementById("run-title").innerText.includes(`+cdptest.JSString(failedRun)+`)`)
			noOverflow(t, c, size.name+" failed run view")
			shot("admin-failed-run")
		}()
	}
}

// noOverflow fails when the page or any table in it is wider than the window, or a paragraph, list item or
// fact is wider than its own box (text cut off inside a panel), measured in the DOM.
func noOverflow(t *testing.T, c *cdptest.Page, page string) {
	t.Helper()
	got := c.Eval(`(() => {
		const bad = [];
		const doc = document.documentElement;
		if (doc.scrollWidth > innerWidth) bad.push("document " + doc.scrollWidth + " > " + innerWidth);
		for (const tb of document.querySelectorAll("table")) {
			if (!tb.offsetParent) continue; // Hidden.
			const r = tb.getBoundingClientRect();
			if (r.right > innerWidth + 0.5 || tb.scrollWidth > tb.parentElement.clientWidth + 0.5) {
				bad.push("#" + tb.id + " " + Math.round(r.right) + "/" + tb.scrollWidth + " > " + innerWidth + "/" + tb.parentElement.clientWidth);
			}
		}
		for (const e of document.querySelectorAll("p, li, dd")) {
			if (e.offsetParent && e.scrollWidth > e.clientWidth + 0.5) {
				bad.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " + e.scrollWidth + " > " + e.clientWidth + ": " + e.innerText.slice(0, 60));
			}
		}
		return bad.join("; ");
	})()`)
	if got != "" {
		t.Errorf("%s overflows: %s", page, got)
	}
}

// startDemo runs `difybot demo` for the rest of the test and returns its base URL and admin token.
func startDemo(t *testing.T) (base, token string) {
	t.Helper()
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
	return base, token
}

// sendWeb sends a text through the web chat's API, as the page does, and returns the run's id.
func sendWeb(t testing.TB, base, text string) string { return sendWebTo(t, base, text, "") }

// sendWebTo is sendWeb with the app picked on the page ("" for none).
func sendWebTo(t testing.TB, base, text, app string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fields := map[string]string{"id": web.NewID(), "session": web.NewID(), "text": text}
	if app != "" {
		fields["app"] = app
	}
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	mw.Close()
	res, err := http.Post(base+"/api/messages", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		RunID string `json:"run_id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("send %q: %d %v", text, res.StatusCode, err)
	}
	return out.RunID
}

// waitFile waits for a download to be complete and returns its bytes.
func waitFile(t testing.TB, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 && json.Valid(b) {
			return b
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(filepath.Dir(path))
			t.Fatalf("no download at %s (the directory holds %v)", path, entries)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStatus waits until the admin API shows run id with status want.
func waitStatus(t testing.TB, base, token, id, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, base+"/admin/runs/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var d struct{ Run struct{ Status string } }
		json.NewDecoder(res.Body).Decode(&d)
		res.Body.Close()
		if got = d.Run.Status; got == want {
			return
		}
	}
	t.Fatalf("run %s is %q, want %q", id, got, want)
}
