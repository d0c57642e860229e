package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

// demoLatency makes each simulated workflow node take long enough to watch the progress.
const demoLatency = 400 * time.Millisecond

func demo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("demo")
	addr := fs.String("addr", "", "listen address (default HTTP_ADDR or :8080)")
	scenario := fs.String("scenario", "ok", "the simulator's starting scenario (see difysim -list)")
	shape := fs.String("shape", difytest.DefaultShape, "the simulated app's starting shape: its mode and start form (see difysim -list)")
	if _, err := fs.parse(args, getenv, stdout, stderr); err != nil {
		return err
	}
	if !slices.ContainsFunc(difytest.Shapes(), func(s difytest.Shape) bool { return s.Name == *shape }) {
		fmt.Fprintf(stderr, "demo: unknown shape %q (difysim -list shows them)\n", *shape)
		return exitError(2)
	}
	sim := difytest.NewServer(difytest.Options{Scenario: *scenario, Shape: *shape, Latency: demoLatency, PingEvery: 2 * time.Second})
	defer sim.Close()
	// A second app on a second simulated host, a Chatbot, shows several apps behind one bot: the web chat picks
	// one, and "/chat …" or "chat: …" routes a message to it.
	chat := difytest.NewServer(difytest.Options{Shape: "chatbot", APIKey: "app-demo-chat", Latency: demoLatency, PingEvery: 2 * time.Second})
	defer chat.Close()
	appsDir, err := os.MkdirTemp("", "difybot-demo-apps-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(appsDir)
	appsFile := filepath.Join(appsDir, "apps.yaml")
	if err := os.WriteFile(appsFile, []byte(demoApps(sim.URL(), chat.URL())), 0o600); err != nil {
		return err
	}

	// The demo needs nothing from the environment; what is set there (DATA_DIR, HTTP_ADDR, LOG_*) is honoured.
	vars := map[string]string{"DIFY_BASE_URL": sim.URL(), "DIFY_APPS_FILE": appsFile, "DEMO_PHOTOS_KEY": "app-test",
		"DEMO_CHAT_KEY": "app-demo-chat", "LOG_FORMAT": "console"}
	for _, k := range []string{"DATA_DIR", "HTTP_ADDR", "LOG_LEVEL", "LOG_FORMAT", "BOT_LANGUAGE", "DIFY_TIMEOUT", "MAX_IMAGE_BYTES"} {
		if v := getenv(k); v != "" {
			vars[k] = v
		}
	}
	if vars["DATA_DIR"] == "" {
		dir, err := os.MkdirTemp("", "difybot-demo-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		vars["DATA_DIR"] = dir
	}
	if *addr != "" {
		vars["HTTP_ADDR"] = *addr
	}
	token := rand.Text()
	vars["ADMIN_TOKEN"] = token
	sys, err := boot(ctx, func(k string) string { return vars[k] }, stderr, platformEnv{demo: true})
	if err != nil {
		return err
	}
	defer sys.Close()
	// The bot reads the app's start form again at once after a shape switch, instead of after its cache's 5 minutes.
	sw := simSwitch(sim, sys.bot.ForgetApp)
	sys.adminExtra["/admin/sim/scenario"] = sw
	sys.adminExtra["/admin/sim/shape"] = sw
	mux, err := sys.routes()
	if err != nil {
		return err
	}
	return sys.serve(ctx, mux, func(bound string) {
		base := "http://" + localURL(bound)
		fmt.Fprintf(stdout, `
difybot demo is running.

  web chat       %s/
  admin page     %s/admin/      admin token: %s
  simulated Dify %s  app "photos" (scenario %q, shape %q; switch both on the admin page)
                 %s  app "chat", a Chatbot: pick it in the web chat, or start a message with /chat

Send a photo in the web chat and watch the steps on the admin page. A scenario is how Dify fails; a shape is
what the app asks for (shape required_text: a photo alone is asked for its question). Ctrl+C stops.
`, base, base, token, sim.URL(), *scenario, *shape, chat.URL())
	})
}

// demoApps is the demo's DIFY_APPS_FILE: the switchable app, which the web chat uses unless another is picked,
// and a Chatbot on another host.
func demoApps(photos, chat string) string {
	return "default: photos\ndirect: photos\napps:\n" +
		"  photos:\n    base_url: " + photos + "\n    api_key_env: DEMO_PHOTOS_KEY\n    keywords: [photos]\n" +
		"  chat:\n    base_url: " + chat + "\n    api_key_env: DEMO_CHAT_KEY\n    keywords: [chat]\n"
}

// simSwitch lets the admin page change the simulator's scenario, so each diagnosis can be watched happening, and
// its app shape, so each start form can be tried; shapeChanged runs after a shape switch.
func simSwitch(sim *difytest.Server, shapeChanged func()) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/sim/scenario", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"scenario": sim.Scenario(), "scenarios": difytest.Scenarios()})
	})
	mux.HandleFunc("PUT /admin/sim/scenario", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Scenario string `json:"scenario"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "send {\"scenario\":\"NAME\"}"})
			return
		}
		if err := sim.SetScenario(in.Scenario); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"scenario": sim.Scenario()})
	})
	mux.HandleFunc("GET /admin/sim/shape", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"shape": sim.Shape(), "shapes": difytest.Shapes()})
	})
	mux.HandleFunc("PUT /admin/sim/shape", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Shape string `json:"shape"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "send {\"shape\":\"NAME\"}"})
			return
		}
		if err := sim.SetShape(in.Shape); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		shapeChanged()
		writeJSON(w, http.StatusOK, map[string]any{"shape": sim.Shape()})
	})
	return mux
}

// localURL turns a bound address such as [::]:8080 into one a browser can open.
func localURL(bound string) string {
	host, port := bound, ""
	for i := len(bound) - 1; i >= 0; i-- {
		if bound[i] == ':' {
			host, port = bound[:i], bound[i+1:]
			break
		}
	}
	if host == "" || host == "[::]" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return host + ":" + port
}
