package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/difybot/difybot/dify/difytest"
)

// The demo's shape switch lists the simulator's shapes, refuses an unknown one, and after a switch tells the bot
// to read the start form again.
func TestSimSwitchShape(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{})
	defer sim.Close()
	forgot := 0
	h := simSwitch(sim, func() { forgot++ })
	do := func(method, body string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/admin/sim/shape", strings.NewReader(body)))
		var out map[string]any
		json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	code, out := do("GET", "")
	shapes, _ := out["shapes"].([]any)
	if code != http.StatusOK || out["shape"] != difytest.DefaultShape || len(shapes) != len(difytest.Shapes()) {
		t.Fatalf("GET: %d %v", code, out)
	}
	if code, out := do("PUT", `{"shape":"no_such_shape"}`); code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "no_such_shape") || forgot != 0 {
		t.Errorf("PUT unknown: %d %v, forgot %d", code, out, forgot)
	}
	if code, _ := do("PUT", `not json`); code != http.StatusBadRequest {
		t.Errorf("PUT bad body: %d", code)
	}
	if code, out := do("PUT", `{"shape":"required_text"}`); code != http.StatusOK || out["shape"] != "required_text" || sim.Shape() != "required_text" || forgot != 1 {
		t.Errorf("PUT required_text: %d %v, sim %s, forgot %d", code, out, sim.Shape(), forgot)
	}
}
