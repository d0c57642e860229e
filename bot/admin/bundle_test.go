package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
)

// TestAdminBundle: one file with the run, its steps, nodes and diagnosis and the replica's sections, offered as a
// download, with every planted secret redacted, including ones the About sections themselves carry.
func TestAdminBundle(t *testing.T) {
	about := func(context.Context) map[string]any {
		return map[string]any{
			"versions": map[string]string{"difybot": "v1.2.3"},
			"app":      map[string]string{"mode": "workflow", "image_input": "photo"},
			"config":   map[string]string{"DIFY_API_KEY": "[redacted]", "careless": "key " + leakDifyKey},
		}
	}
	e := newAdminEnv(t, nil, func(c *Config) { c.About = about })
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
