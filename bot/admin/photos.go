package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/difybot/difybot/bot"
)

// OpenFile reads a run's attachment again from where the person sent it (the platform's file API, the web
// chat's upload), for the thumbnails of the admin page. *bot.Bot's platforms implement it through cmd.
type OpenFile func(ctx context.Context, r bot.Run, f bot.File) (io.ReadCloser, error)

// maxPhoto bounds what GET /admin/runs/{id}/files/{n} sends: a thumbnail needs no more than the photo itself.
const maxPhoto = 32 << 20

// photoTypes are what the page may show; an SVG is never served, so nothing from a person's file runs here.
var photoTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

// getFile answers GET /admin/runs/{id}/files/{n}: the run's nth attachment when it can still be read and is a
// photo, sniffed from its bytes. Platforms keep files for a while only (LINE's content expires; the web chat
// removes its uploads after the answer), so 404 with why is an ordinary answer.
func (a *api) getFile(w http.ResponseWriter, r *http.Request) {
	if a.cfg.OpenFile == nil {
		a.writeError(w, http.StatusNotFound, "this replica cannot read attachments again")
		return
	}
	run, err := a.cfg.Store.Run(r.Context(), r.PathValue("id"))
	if errors.Is(err, bot.ErrNotFound) {
		a.writeError(w, http.StatusNotFound, fmt.Sprintf("no run %q", clipRunes(r.PathValue("id"), 60)))
		return
	}
	if err != nil {
		a.internal(w, r, "load run", err)
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= len(run.Message.Files) {
		a.writeError(w, http.StatusNotFound, fmt.Sprintf("the run has %d file(s)", len(run.Message.Files)))
		return
	}
	rc, err := a.cfg.OpenFile(r.Context(), run, run.Message.Files[n])
	if err != nil {
		a.log.Info().Err(err).Str("run_id", run.ID).Msg("admin: an attachment could not be read again")
		a.writeError(w, http.StatusNotFound, "the file is no longer available from "+run.Platform)
		return
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, maxPhoto+1)); err != nil || buf.Len() > maxPhoto {
		a.writeError(w, http.StatusNotFound, "the file could not be read again")
		return
	}
	ct := http.DetectContentType(buf.Bytes())
	if !photoTypes[ct] {
		a.writeError(w, http.StatusUnsupportedMediaType, "the file is "+ct+", not a photo the page shows")
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
	// Bytes of a photo go out as they are: the redactor is for text.
	out := http.ResponseWriter(w)
	if rw, ok := w.(*redactingWriter); ok {
		out = rw.ResponseWriter
	}
	_, _ = out.Write(buf.Bytes())
}
