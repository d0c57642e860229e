package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/difybot/difybot/bot/store"
	"github.com/rs/zerolog"
)

// TestCheckCreatesNothing is doctor's store check: it says what it finds, and leaves the directory as it was.
func TestCheckCreatesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	migrated := filepath.Join(dir, "ok", "difybot.db")
	st, err := store.Open(ctx, store.Config{SQLitePath: migrated, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	notDB := filepath.Join(dir, "plain")
	os.WriteFile(notDB, []byte("not a database"), 0o600)

	tests := []struct {
		name, path, want, wantErr string
	}{
		{"absent", filepath.Join(dir, "data", "difybot.db"), "does not exist yet; serve creates it", ""},
		{"migrated", migrated, "readable, schema version", ""},
		{"under a file", filepath.Join(notDB, "difybot.db"), "", "is a file"},
		{"not a database", notDB, "", "read "},
		{"a directory", dir, "", "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := listTree(t, dir)
			got, err := store.Check(ctx, store.Config{SQLitePath: tt.path})
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Check = %q, %v; want an error with %q", got, err, tt.wantErr)
			case tt.wantErr == "" && (err != nil || !strings.Contains(got, tt.want)):
				t.Errorf("Check = %q, %v; want %q", got, err, tt.want)
			}
			if after := listTree(t, dir); after != before {
				t.Errorf("Check changed the directory:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func listTree(t testing.TB, dir string) string {
	t.Helper()
	var names []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			names = append(names, strings.TrimPrefix(p, dir)+"@"+info.ModTime().String())
		}
		return nil
	})
	return strings.Join(names, " ")
}
