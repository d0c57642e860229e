package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
)

// OutputFilesContract checks s's output files: kept once per run, attempt and key, listed in order without their
// bytes, read back with their preview (or as their own), deleted once expired, and signed with one key that
// stays the same. bot/store runs it on each back end, bot/bottest on memory.
func OutputFilesContract(t *testing.T, s bot.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	r, _, err := s.Enqueue(ctx, bot.Message{Platform: "slack", EventID: "EvFiles", ChatID: "C1", UserID: "U1", Text: "chart"})
	if err != nil {
		t.Fatal(err)
	}
	png, csv, small := bytes.Repeat([]byte{0x89, 'P'}, 3000), []byte("a,b\n1,2\n"), []byte{0xff, 0xd8, 0xff}
	files := []struct {
		f             bot.OutputFile
		data, preview []byte
	}{
		{bot.OutputFile{ID: "f_csv", RunID: r.ID, Attempt: 1, Seq: 1, Key: "k-csv", Name: "rows.csv", MIMEType: "text/csv", Size: int64(len(csv)),
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, csv, nil},
		{bot.OutputFile{ID: "f_png", RunID: r.ID, Attempt: 1, Seq: 0, Key: "k-png", Name: "chart.png", MIMEType: "image/png", Size: int64(len(png)),
			CreatedAt: now, ExpiresAt: now.Add(2 * time.Hour)}, png, small},
		{bot.OutputFile{ID: "f_png2", RunID: r.ID, Attempt: 2, Seq: 0, Key: "k-png", Name: "chart.png", MIMEType: "image/png", Size: int64(len(png)),
			CreatedAt: now, ExpiresAt: now.Add(3 * time.Hour)}, png, nil},
	}
	for _, f := range files {
		for range 2 { // Adding again (a resumed attempt) changes nothing.
			if err := s.AddOutputFile(ctx, f.f, f.data, f.preview); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The same run, attempt and key under another id is the same file: kept once.
	dup := files[0].f
	dup.ID = "f_csv_again"
	if err := s.AddOutputFile(ctx, dup, []byte("other"), nil); err != nil {
		t.Fatal(err)
	}
	list, err := s.OutputFiles(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range list {
		ids = append(ids, f.ID)
	}
	if want := []string{"f_png", "f_csv", "f_png2"}; !slices.Equal(ids, want) {
		t.Fatalf("OutputFiles = %v, want %v (by attempt, then place)", ids, want)
	}
	if got := list[0]; got.PreviewSize != int64(len(small)) || got.Name != "chart.png" || got.Size != int64(len(png)) ||
		!got.ExpiresAt.Equal(now.Add(2*time.Hour)) || !got.CreatedAt.Equal(now) {
		t.Errorf("OutputFiles[0] = %+v", got)
	}
	for _, c := range []struct {
		id      string
		preview bool
		want    []byte
	}{{"f_png", false, png}, {"f_png", true, small}, {"f_csv", true, csv}, {"f_csv", false, csv}} {
		f, data, err := s.OutputFileData(ctx, c.id, c.preview)
		if err != nil || f.ID != c.id || !bytes.Equal(data, c.want) {
			t.Errorf("OutputFileData(%s, preview %t) = %s, %d bytes, %v", c.id, c.preview, f.ID, len(data), err)
		}
	}
	if _, _, err := s.OutputFileData(ctx, "f_nope", false); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("OutputFileData(unknown) = %v, want ErrNotFound", err)
	}
	// The clock is the caller's: at now+2h the CSV (1 h) and the first PNG (2 h, exactly) are gone.
	n, err := s.DeleteOutputFiles(ctx, now.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Errorf("DeleteOutputFiles = %d, %v; want 2", n, err)
	}
	if _, _, err := s.OutputFileData(ctx, "f_csv", false); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("an expired file is still there: %v", err)
	}
	if list, _ := s.OutputFiles(ctx, r.ID); len(list) != 1 || list[0].ID != "f_png2" {
		t.Errorf("after expiry OutputFiles = %+v", list)
	}
	k1, err := s.SigningKey(ctx)
	if err != nil || len(k1) < 32 {
		t.Fatalf("SigningKey = %d bytes, %v", len(k1), err)
	}
	if k2, err := s.SigningKey(ctx); err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("SigningKey changed between calls: %v", err)
	}
}
