package admin

import (
	"context"
	"net/http"
	"regexp"
	"time"
)

// bundle is GET /admin/runs/{id}/bundle: everything about one run in one JSON file, to attach to a Dify issue
// or a support request. It is the run as GET /admin/runs/{id} shows it, plus what the replica knows around it
// (Config.About: versions, the discovered app, the redacted configuration). Like every admin answer it passes
// the redactor, so a secret that found its way into an error or a reply leaves as [redacted].
type bundle struct {
	Kind        string    `json:"kind"`
	GeneratedAt time.Time `json:"generated_at"`
	runDetail
	About map[string]any `json:"about,omitempty"`
}

// About is what a debug bundle says about the replica, given by the caller of New; each key is a section.
type About func(ctx context.Context) map[string]any

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func (a *api) getBundle(w http.ResponseWriter, r *http.Request) {
	d, ok := a.detail(w, r)
	if !ok {
		return
	}
	b := bundle{Kind: "difybot debug bundle", GeneratedAt: a.cfg.Now().UTC(), runDetail: d}
	if a.cfg.About != nil {
		b.About = a.cfg.About(r.Context())
	}
	w.Header().Set("Content-Disposition", `attachment; filename="difybot-run-`+unsafeName.ReplaceAllString(d.Run.ID, "_")+`.json"`)
	a.writeJSON(w, http.StatusOK, b)
}
