package web_test

import (
	"context"
	"encoding/json"
	"image"
	_ "image/jpeg"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/internal/cdptest"
	"github.com/difybot/difybot/platforms/web"
)

// hostileDify is the simulated Dify with a workflow that says what an attacker wants: every node has the
// title given, and the run answers the answer given once the test releases it (so the page can be looked at
// while it shows the last node's title).
type hostileDify struct {
	*dify.Client
	title, answer string
	release       chan struct{}
}

func (h *hostileDify) RunWorkflow(ctx context.Context, req dify.RunRequest) (*dify.Run, error) {
	on := req.OnEvent
	req.OnEvent = func(ev dify.Event) {
		if strings.HasPrefix(ev.Event, "node_") {
			ev.Data.Title = h.title
		}
		if on != nil {
			on(ev)
		}
	}
	run, err := h.Client.RunWorkflow(ctx, req)
	if err != nil {
		return run, err
	}
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := *run
	out.Outputs, out.OutputsJSON = map[string]any{"text": h.answer}, nil
	return &out, nil
}

// payload marks a successful injection: it changes the title and sets a global.
const payload = `document.title='pwned';window.pwned=1`

// TestHostileAnswersInABrowser is issue 13's first defect: answers, node titles and choices that carry HTML,
// event handlers, javascript: links and quote-breaking URLs are shown as text in the web chat. Nothing runs,
// nothing navigates, the only links are http(s) ones, and the page breaks none of its own CSP.
func TestHostileAnswersInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser")
	}
	c := cdptest.Start(t)
	title := `<img src=x onerror="` + payload + `"><script>` + payload + `</script>**bold**[t](javascript:` + payload + `)` +
		`[cover](https://a.example/"onmouseover="` + payload + `"style="position:fixed;inset:0")`
	answerLines := []string{
		`[x](https://a.example/"onmouseover="` + payload + `"style="position:fixed;inset:0")`,
		`<img src=x onerror="` + payload + `">`,
		`<svg onload="` + payload + `"></svg>`,
		`<script>` + payload + `</script>`,
		`<a href="javascript:` + payload + `">raw link</a>`,
		`[click](javascript:` + payload + `)`,
		`[click2](JaVaScRiPt:` + payload + `)`,
		`[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)`,
		`[rel](/admin/)`,
		"**<b onclick=\"" + payload + "\">bold</b>** `<i onmouseover=\"" + payload + "\">code</i>`",
		`[safe](https://example.com/docs?a=1&b="2")`,
	}
	answer := strings.Join(answerLines, "\n")
	choice := `<img src=x onerror="` + payload + `">`
	h := &hostileDify{title: title, answer: answer, release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(h.release) }) }
	srv, _ := newChatWith(t, chatOptions{wrap: func(dc *dify.Client) bot.Workflows {
		h.Client = dc
		return h
	}})
	// Before the server and the store stop, even when the test fails midway: let the run end and drop the
	// page's event stream, which would otherwise keep the server's Close waiting.
	t.Cleanup(func() { release(); srv.CloseClientConnections() })

	// Every CSP violation is recorded from the first byte of every document: the page's own script and style
	// must pass, and anything injected would be reported even if the policy stopped it.
	c.Call("Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": `window.cspViolations = [];
		document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));`})
	c.Navigate(srv.URL + "/")
	c.Eval(`window.stayed = true; true`) // Gone if the page navigates anywhere.
	pageTitle := c.Eval(`document.title`)
	pageURL := c.Eval(`location.href`)
	// safe is the page's state after an injection attempt; it names what went wrong, or is "".
	safe := `(() => {
		for (const e of document.querySelectorAll("*")) {
			for (const a of e.attributes) {
				if (/^on/i.test(a.name)) return "an element has " + a.name + ": " + e.outerHTML;
				if (/^\s*javascript:/i.test(a.value)) return "an attribute is a javascript: URL: " + e.outerHTML;
			}
		}
		for (const a of document.querySelectorAll("#log a")) {
			const u = new URL(a.href);
			if (u.protocol !== "https:" && u.protocol !== "http:") return "a link to " + a.href;
			if (a.rel !== "noopener noreferrer" || a.target !== "_blank") return "a link without rel/target: " + a.outerHTML;
		}
		if (document.querySelectorAll("#log img:not(.thumb), #log svg, #log script, #log b, #log i, #log iframe, #log object").length) return "markup from data: " + document.getElementById("log").innerHTML;
		if (document.scripts.length !== 1) return document.scripts.length + " scripts";
		// Hover and click everything but links (a click there would open a tab): a handler, if any, would run.
		for (const e of document.querySelectorAll("#log *")) {
			e.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
			if (e.tagName !== "A" && !e.classList.contains("chip")) e.dispatchEvent(new MouseEvent("click", {bubbles: true}));
		}
		if (window.pwned) return "the payload ran";
		if (document.title !== ` + cdptest.JSString(pageTitle) + `) return "the title changed to " + document.title;
		if (location.href !== ` + cdptest.JSString(pageURL) + ` || !window.stayed) return "the page navigated to " + location.href;
		if (window.cspViolations.length) return "CSP violations: " + window.cspViolations.join(", ");
		return "";
	})()`
	check := func(when string) {
		t.Helper()
		if msg := c.Eval(safe); msg != "" {
			t.Fatalf("%s: %s", when, msg)
		}
	}

	// 1. The person sends a photo with markup they typed themselves: their bubble shows it as typed. While the
	// workflow runs, the node's hostile title is shown as text.
	typed := `<img src=x onerror="` + payload + `"> [me](javascript:` + payload + `) **b**`
	var doc struct{ Root struct{ NodeID int } }
	json.Unmarshal(c.Call("DOM.getDocument", nil), &doc)
	var q struct{ NodeID int }
	json.Unmarshal(c.Call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#image"}), &q)
	png := filepath.Join(t.TempDir(), "photo.png")
	if err := os.WriteFile(png, bottest.PNG(t, 64, 48), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Call("DOM.setFileInputFiles", map[string]any{"nodeId": q.NodeID, "files": []string{png}})
	c.Eval(`document.getElementById("text").value = ` + cdptest.JSString(typed) + `; document.getElementById("form").requestSubmit(); true`)
	c.WaitFor("the hostile node title", `!!document.querySelector(".msg.bot:last-child .progress strong")`)
	check("while the hostile node runs")
	if got := c.Eval(`document.querySelector(".msg.bot:last-child .progress strong").textContent`); got != title {
		t.Errorf("the node title shows %q, want %q", got, title)
	}
	if got, want := c.Eval(`document.querySelector(".msg.me").textContent`), strings.Replace(typed, "**b**", "b", 1); got != want {
		t.Errorf("own bubble shows %q, want %q", got, want)
	}
	if n := c.Eval(`document.querySelectorAll(".msg.me img.thumb").length`); n != "1" {
		t.Errorf("%s thumbnails of the photo, want 1", n)
	}

	// 2. The answer: markup shows as text, unsafe links as the text they were, the safe link as a link.
	release()
	c.WaitFor("the hostile answer", `(() => { const e = document.querySelector(".msg.bot:last-child"); return e.dataset.final === "true"; })()`)
	check("after the hostile answer")
	shown := c.Eval(`document.querySelector(".msg.bot:last-child").innerText`)
	for _, line := range answerLines[1:10] {
		if line == answerLines[9] {
			line = `<b onclick="` + payload + `">bold</b> <i onmouseover="` + payload + `">code</i>` // Bold and code keep only their text.
		}
		if !strings.Contains(shown, line) {
			t.Errorf("the answer does not show %q as text; it shows:\n%s", line, shown)
		}
	}
	var links []struct{ Text, Href string }
	json.Unmarshal([]byte(c.Eval(`JSON.stringify([...document.querySelectorAll(".msg.bot:last-child a")].map(a => ({text: a.textContent, href: a.getAttribute("href")})))`)), &links)
	if len(links) != 2 || links[0].Text != "x" || !strings.HasPrefix(links[0].Href, "https://a.example/%22onmouseover=%22") ||
		links[1].Text != "safe" || links[1].Href != "https://example.com/docs?a=1&b=%222%22" {
		t.Errorf("links = %+v, want the quote-breaking URL escaped and the safe one, nothing else", links)
	}
	if n := c.Eval(`document.querySelectorAll(".msg.bot:last-child strong, .msg.bot:last-child code").length`); n != "2" {
		t.Errorf("%s strong/code elements in the answer, want 2", n)
	}

	// 3. Choices carrying markup are buttons labelled with it; a tap sends it, shown as text.
	c.Eval(`document.getElementById("log").appendChild(chips([` + cdptest.JSString(choice) + `])); true`)
	if got := c.Eval(`document.querySelector(".chip").textContent`); got != choice {
		t.Errorf("chip shows %q, want %q", got, choice)
	}
	check("with a hostile choice")
	c.Eval(`document.querySelector(".chip").click(); true`)
	c.WaitFor("the tapped choice answered", `document.querySelectorAll(".msg.me").length === 2 && document.querySelector(".msg.bot:last-child").dataset.final === "true"`)
	if got := c.Eval(`document.querySelectorAll(".msg.me")[1].textContent`); got != choice {
		t.Errorf("the tapped choice shows %q, want %q", got, choice)
	}
	check("after the tapped choice")
	if dir := os.Getenv("DIFYBOT_SCREENSHOTS"); dir != "" {
		c.Screenshot(filepath.Join(dir, "web-hostile-answer.png"))
	}
}

// TestRenderInABrowser pins the page's markdown renderer: the subset Dify answers use becomes elements, and
// everything else, however it is dressed, stays text.
func TestRenderInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser")
	}
	c := cdptest.Start(t)
	srv, _ := newChat(t, "")
	c.Navigate(srv.URL + "/")
	const a = ` target="_blank" rel="noopener noreferrer"`
	cases := []struct{ in, html string }{
		{"plain", "plain"},
		{"a **b** `c`\nnext line", "a <strong>b</strong> <code>c</code>\nnext line"},
		{"<b>x</b> & y", "&lt;b&gt;x&lt;/b&gt; &amp; y"},
		{"[x](https://a.example/p?q=1)", `<a href="https://a.example/p?q=1"` + a + `>x</a>`},
		{"[x](http://a.example)", `<a href="http://a.example/"` + a + `>x</a>`},
		{`[x](https://a/"onmouseover="alert(1)"style="position:fixed;inset:0")`,
			`<a href="https://a/%22onmouseover=%22alert(1"` + a + `>x</a>"style="position:fixed;inset:0")`},
		{`[x](https://a/'onmouseover='alert')`, `<a href="https://a/'onmouseover='alert'"` + a + `>x</a>`},
		{"[x](javascript:alert(1))", "[x](javascript:alert(1))"},
		{"[x](JAVASCRIPT:alert(1))", "[x](JAVASCRIPT:alert(1))"},
		{"[x](java\tscript:alert(1))", "[x](java\tscript:alert(1))"},
		{"[x](vbscript:msgbox)", "[x](vbscript:msgbox)"},
		{"[x](data:text/html,hi)", "[x](data:text/html,hi)"},
		{"[x](/admin/)", "[x](/admin/)"},
		{"[x](//evil.example/)", "[x](//evil.example/)"},
		{"[x](ftp://a.example/)", "[x](ftp://a.example/)"},
		{"[<img src=x>](https://a.example)", `<a href="https://a.example/"` + a + `>&lt;img src=x&gt;</a>`},
		{"**[x](https://a.example)**", `<strong><a href="https://a.example/"` + a + `>x</a></strong>`},
		{"[**b**](https://a.example)", `<a href="https://a.example/"` + a + `><strong>b</strong></a>`},
		{"`**not bold** [x](javascript:y)`", "<code>**not bold** [x](javascript:y)</code>"},
		{"**`<i>`**", "<strong><code>&lt;i&gt;</code></strong>"},
		{"unclosed **bold and `code", "unclosed **bold and `code"},
	}
	ins := make([]string, len(cases))
	for i, tc := range cases {
		ins[i] = tc.in
	}
	b, _ := json.Marshal(ins)
	var got []string
	json.Unmarshal([]byte(c.Eval(`JSON.stringify(`+string(b)+`.map(s => { const d = document.createElement("div"); d.append(render(s)); return d.innerHTML; }))`)), &got)
	if len(got) != len(cases) {
		t.Fatalf("got %d results for %d cases", len(got), len(cases))
	}
	for i, tc := range cases {
		if got[i] != tc.html {
			t.Errorf("render(%q)\n got %s\nwant %s", tc.in, got[i], tc.html)
		}
	}
}

// TestPageInTheChatsLanguage: with BOT_LANGUAGE=ja the page's own words (labels, placeholder, progress) are
// Japanese, and none of the English ones is left; en stays English.
func TestPageInTheChatsLanguage(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser")
	}
	// words reads what the page says of its own, before and while a run works.
	const words = `JSON.stringify([document.title, document.querySelector("header .progress").textContent,
		document.querySelector("header a").textContent, document.getElementById("file-label").textContent,
		document.getElementById("text").placeholder, document.getElementById("send").textContent,
		document.getElementById("token").placeholder])`
	for _, tc := range []struct {
		lang          bot.Lang
		want, notWant []string
	}{
		{"ja", []string{"Webチャット", "管理ページ", "画像を添付", "写真について質問", "送信", "管理トークン"},
			[]string{"web chat", "admin page", "Attach image", "Ask about", "Send", "admin token"}},
		{"en", []string{"web chat", "admin page", "Attach image", "Ask about the photo", "Send", "admin token"},
			[]string{"Webチャット", "送信"}},
	} {
		t.Run(string(tc.lang), func(t *testing.T) {
			c := cdptest.Start(t)
			srv, _ := newChatWith(t, chatOptions{lang: tc.lang})
			t.Cleanup(srv.CloseClientConnections)
			c.Navigate(srv.URL + "/")
			got := c.Eval(words)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("page says %s, want %q in it", got, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("page says %s, which has %q", got, w)
				}
			}
			// The progress lines while a run works are the page's too: every one seen before the answer is checked.
			c.Eval(`window.seen = []; new MutationObserver(() => { for (const p of document.querySelectorAll(".msg.bot .progress")) seen.push(p.textContent); })
				.observe(document.getElementById("log"), { subtree: true, childList: true, characterData: true });
				document.getElementById("text").value = "hello"; document.getElementById("form").requestSubmit(); true`)
			c.WaitFor("the answer", `document.querySelector(".msg.bot[data-final=true]") !== null`)
			seen := c.Eval(`JSON.stringify(seen)`)
			english := regexp.MustCompile(`sending…|queued|working on it|running |done\)`)
			japanese := regexp.MustCompile(`送信中|受付済み|処理しています|を実行中|件完了`)
			if seen == "[]" {
				t.Fatal("no progress line was seen before the answer")
			}
			mine, other := english, japanese
			if tc.lang == "ja" {
				mine, other = japanese, english
			}
			if !mine.MatchString(seen) || other.MatchString(seen) {
				t.Errorf("progress lines in %s: %s", tc.lang, seen)
			}
		})
	}
}

// TestAnsweredPhotoKeepsItsThumbnail: once a photo's run has answered, the chat removes the photo but keeps the
// page's small copy, which OpenFile (the admin page's run view) then reads.
func TestAnsweredPhotoKeepsItsThumbnail(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser")
	}
	c := cdptest.Start(t)
	dir := t.TempDir()
	srv, _ := newChatWith(t, chatOptions{dir: dir})
	t.Cleanup(srv.CloseClientConnections)
	c.Navigate(srv.URL + "/")
	png := filepath.Join(t.TempDir(), "photo.png")
	if err := os.WriteFile(png, bottest.PNG(t, 1000, 800), 0o644); err != nil {
		t.Fatal(err)
	}
	var doc struct{ Root struct{ NodeID int } }
	json.Unmarshal(c.Call("DOM.getDocument", nil), &doc)
	var q struct{ NodeID int }
	json.Unmarshal(c.Call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#image"}), &q)
	c.Call("DOM.setFileInputFiles", map[string]any{"nodeId": q.NodeID, "files": []string{png}})
	c.Eval(`document.getElementById("text").value = "what is it?"; document.getElementById("form").requestSubmit(); true`)
	c.WaitFor("the answer", `document.querySelector(".msg.bot[data-final=true]") !== null`)

	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != 1 || !strings.HasSuffix(names[0], ".thumb") {
		t.Fatalf("upload dir after the answer holds %v, want only the thumbnail", names)
	}
	chat, err := web.New(web.Config{Inbox: &bottest.Inbox{}, UploadDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSuffix(filepath.Base(names[0]), ".thumb")
	rc, err := chat.OpenFile(context.Background(), bot.Message{}, bot.File{ID: id})
	if err != nil {
		t.Fatalf("OpenFile after the answer: %v", err)
	}
	defer rc.Close()
	cfg, format, err := image.DecodeConfig(rc)
	if err != nil || format != "jpeg" || cfg.Width != 320 || cfg.Height != 256 {
		t.Errorf("the kept thumbnail is %s %dx%d (%v), want a 320x256 JPEG", format, cfg.Width, cfg.Height, err)
	}
}

// TestStreamInABrowser: a long answer grows in its bubble while the workflow writes it, its reasoning never
// shown, and the final reply replaces it.
func TestStreamInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser")
	}
	c := cdptest.Start(t)
	srv, _ := newChat(t, "", func(o *difytest.Options, _ *bot.Config) { o.Scenario, o.Latency = "stream_long", 2*time.Second })
	t.Cleanup(srv.CloseClientConnections)
	c.Navigate(srv.URL + "/")
	c.Eval(`document.getElementById("text").value = "tell me all"; document.getElementById("form").requestSubmit(); true`)
	bubble := `document.querySelector(".msg.bot:last-child")`
	c.WaitFor("part of the answer", bubble+`.innerText.includes("The photo was looked at") && `+bubble+`.dataset.final !== "true"`)
	partial := c.Eval(bubble + `.innerText`)
	c.WaitFor("the whole answer", bubble+`.dataset.final === "true"`)
	whole := c.Eval(bubble + `.innerText`)
	if strings.Count(partial, "The photo was looked at") >= 6 || strings.Count(whole, "The photo was looked at") != 6 {
		t.Errorf("the bubble showed %d paragraphs while running and %d at the end, want fewer, then all 6",
			strings.Count(partial, "The photo was looked at"), strings.Count(whole, "The photo was looked at"))
	}
	if strings.Contains(partial+whole, "think") || strings.Contains(partial+whole, "The person sent") {
		t.Error("the page showed the model's reasoning")
	}
}
