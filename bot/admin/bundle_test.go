package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/dify"
	"github.com/rs/zerolog"
)

// TestAdminBundle: one file with the run, its steps, nodes and diagnosis and the replica's sections, offered as a
// download, with every planted secret redacted, including ones the About sections themselves carry.
func TestAdminBundle(t *testing.T) {
	st, err := store.Open(t.Context(), store.Config{SQLitePath: filepath.Join(t.TempDir(), "admin.db"), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &adminEnv{store: st, breaker: dify.NewBreaker(dify.BreakerConfig{}, zerolog.Nop()), now: time.Date(2025, 6, 1, 9, 30, 0, 0, time.UTC)}
	about := func(context.Context) map[string]any {
		return map[string]any{
			"versions": map[string]string{"difybot": "v1.2.3"},
			"app":      map[string]string{"mode": "workflow", "image_input": "photo"},
			"config":   map[string]string{"DIFY_API_KEY": "[redacted]", "careless": "key " + leakDifyKey},
		}
	}
	e.handler = mustNew(t, Config{Token: adminTestToken, Store: st, Breaker: e.breaker, Logger: zerolog.Nop(),
		Now: func() time.Time { return e.now }, Redact: []string{leakDifyKey, leakSlackToken}, About: about})
	failed := e.seed(t, []seedRun{{"slack", bot.RunFailed, bot.CodeDifyRateLimited}})[0]

	rec := e.do(t, "GET", "/admin/runs/"+failed.ID+"/bundle", "Bearer "+adminTestToken, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("bundle: %d %s", rec.Code, rec.Body)
	}
	if cd := rec.Header().Get("Content-Disposition"); cd != `attachment; filename="difybot-run-`+failed.ID+`.json"` {
		t.Errorf("Content-Disposition = %q", cd)
	}
	var b struct {
		Kind        string
		GeneratedAt time.Time `json:"generated_at"`
		adminDetail
		About map[string]map[string]string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if b.Kind != "difybot debug bundle" || !b.GeneratedAt.Equal(e.now) || b.Run.ID != failed.ID || len(b.Steps) != 6 ||
		len(b.Nodes) != 4 || len(b.NodeEvents) != 7 || b.Diagnosis == nil || b.Diagnosis.Code != bot.CodeDifyRateLimited ||
		b.About["versions"]["difybot"] != "v1.2.3" || b.About["app"]["image_input"] != "photo" {
		t.Errorf("bundle = %+v", b)
	}
	for _, secret := range adminLeaks {
		if strings.Contains(rec.Body.String(), secret) {
			t.Errorf("the bundle holds %q", secret)
		}
	}
	if !strings.Contains(b.About["config"]["careless"], "[redacted]") {
		t.Errorf("an About section's secret was not redacted: %q", b.About["config"]["careless"])
	}

	if rec := e.do(t, "GET", "/admin/runs/nope/bundle", "Bearer "+adminTestToken, ""); rec.Code != http.StatusNotFound {
		t.Errorf("unknown run's bundle: %d", rec.Code)
	}
	if rec := e.do(t, "GET", "/admin/runs/"+failed.ID+"/bundle", "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("bundle without the token: %d", rec.Code)
	}
}
