package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/difybot/difybot/internal/cdptest"
)

// TestHumanInputInABrowser is issue 19's walk-through in the demo's web chat, in headless Chromium: the
// simulator's human_input workflow asks back, and its choices, text, photo and action are answered from the chat
// until the run's answer arrives. Its screenshot is docs/images/human-input.png
// (DIFYBOT_SCREENSHOTS=docs/images go test -run TestHumanInputInABrowser ./cmd/difybot).
func TestHumanInputInABrowser(t *testing.T) {
	c, shots := startBrowser(t)
	c.Call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 480, "height": 1040, "deviceScaleFactor": 1, "mobile": false})
	base, token := startDemo(t)
	putJSON(t, base+"/admin/sim/scenario", token, `{"scenario":"human_input"}`)
	waitScenario(t, base, token, "human_input")

	c.Navigate(base + "/")
	send := func(text string) {
		c.Eval(`document.getElementById("text").value = ` + cdptest.JSString(text) + `; document.getElementById("form").requestSubmit(); true`)
	}
	tap := func(label string) {
		c.Eval(`[...document.querySelectorAll(".chip")].filter(b => b.textContent === ` + cdptest.JSString(label) + `).pop().click(); true`)
	}
	final := func(what, sub string, chips int) {
		t.Helper()
		c.WaitFor(what, `[...document.querySelectorAll(".msg.bot")].some(e => e.dataset.final === "true" && e.innerText.includes(`+cdptest.JSString(sub)+`) && e.querySelectorAll(".chip").length === `+strconv.Itoa(chips)+`)`)
	}
	send("Which tea is this?")
	final("the first question with the products as chips", "Please choose product", 3)
	tap("Barley tea")
	final("the paragraph's default as a chip", "Please type note", 1)
	send("The label is a little smudged")
	final("the request for a photo", "Please send a photo for label", 0)
	var doc struct{ Root struct{ NodeID int } }
	json.Unmarshal(c.Call("DOM.getDocument", nil), &doc)
	var q struct{ NodeID int }
	json.Unmarshal(c.Call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#image"}), &q)
	c.Call("DOM.setFileInputFiles", map[string]any{"nodeId": q.NodeID, "files": []string{writePNG(t, 120, 90)}})
	send("")
	final("the actions as chips", "What should happen next?", 2)
	tap("Approve")
	final("the run's answer", "Check the product: Approve", 0)
	c.Screenshot(filepath.Join(shots, "human-input.png"))
}
