package bot

import (
	"context"
	"fmt"
)

// Several photos go into one run when the workflow takes a file list, up to its limit; more than the limit, or
// several photos for a single file input, become consecutive runs. Each run covers its share and hands the rest
// on as a new message (deduplicated by a derived event id) once its own answer is delivered, so answers arrive
// in order and each says which photos it covers.

// Batch is a run's share of photos that came together.
type Batch struct {
	First, Last, Total int      // The photos this run covers, counted from 1, of Total.
	Rest               *Message `json:"rest,omitempty"` // The photos after Last, queued when this run's answer is delivered.
}

// batchLimit is how many photos one run can take, or 0 for no known limit.
func (a *App) batchLimit() int {
	switch {
	case a.ImageInput != "" && !a.ImageList:
		return 1
	case a.ImageList && a.FileLimit > 0:
		return a.FileLimit
	}
	return a.FileLimit
}

// split keeps the photos of q that this run takes and records the rest on r, saved before anything is uploaded
// so a resumed run splits the same way.
func (b *Bot) split(ctx context.Context, r *Run, q request, a *App) (request, error) {
	if r.Batch != nil {
		return q.firstFiles(r.Batch.Last - r.Batch.First + 1), nil
	}
	done, total := r.Message.PhotosBefore, r.Message.PhotosTotal
	n := q.fileCount()
	if total == 0 {
		total = n
	}
	limit := a.batchLimit()
	if total <= 1 || (limit == 0 || n <= limit) && done == 0 {
		return q, nil
	}
	take := n
	if limit > 0 {
		take = min(n, limit)
	}
	r.Batch = &Batch{First: done + 1, Last: done + take, Total: total}
	if take < n {
		rest := r.Message
		rest.EventID = fmt.Sprintf("%s#%d", r.Message.EventID, done+take+1)
		rest.ReplyToken, rest.Redelivery = "", false
		rest.Text, rest.Files = q.text, q.files()[take:]
		rest.PhotosBefore, rest.PhotosTotal = done+take, total
		r.Batch.Rest = &rest
	}
	if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
		return request{}, fmt.Errorf("save run: %w", err)
	}
	return q.firstFiles(take), nil
}

// files lists q's photos in order.
func (q request) files() []File {
	var out []File
	for _, m := range q.parts {
		out = append(out, m.Files...)
	}
	return out
}

// firstFiles keeps q's first n photos.
func (q request) firstFiles(n int) request {
	out := request{text: q.text, took: q.took}
	for _, m := range q.parts {
		if n <= 0 {
			break
		}
		if len(m.Files) > n {
			m.Files = m.Files[:n]
		}
		n -= len(m.Files)
		out.parts = append(out.parts, m)
	}
	return out
}

// queueRest queues the photos after r's share once r's answer is delivered. The derived event id makes it once.
func (b *Bot) queueRest(ctx context.Context, r *Run) error {
	if r.Batch == nil || r.Batch.Rest == nil {
		return nil
	}
	next, _, err := b.cfg.Store.Enqueue(ctx, *r.Batch.Rest)
	if err != nil {
		return fmt.Errorf("bot: queue photos %d–%d of run %s: %w", r.Batch.Last+1, r.Batch.Total, r.ID, err)
	}
	b.log.Info().Str("run_id", r.ID).Str("next_run_id", next.ID).Msg("queued the next photos")
	return nil
}

// batchLabel says which photos an answer covers: "Photo 2 of 3", "Photos 4–6 of 9".
func batchLabel(lang Lang, bt *Batch) string {
	if bt == nil {
		return ""
	}
	if isJapanese(lang) {
		if bt.First == bt.Last {
			return fmt.Sprintf("写真 %d/%d", bt.First, bt.Total)
		}
		return fmt.Sprintf("写真 %d〜%d/%d", bt.First, bt.Last, bt.Total)
	}
	if bt.First == bt.Last {
		return fmt.Sprintf("Photo %d of %d", bt.First, bt.Total)
	}
	return fmt.Sprintf("Photos %d–%d of %d", bt.First, bt.Last, bt.Total)
}
