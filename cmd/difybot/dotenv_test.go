package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string
		quoted   []string
		wantErr  string
	}{
		{name: "plain", in: "A=1\nB=two words\n", want: map[string]string{"A": "1", "B": "two words"}},
		{name: "comments and blanks", in: "# c\n\n  # indented\nA=1 # trailing\nB=x#y\n", want: map[string]string{"A": "1", "B": "x#y"}},
		{name: "empty value", in: "DIFY_API_KEY=\n", want: map[string]string{"DIFY_API_KEY": ""}},
		{name: "export", in: "export A=1\n", want: map[string]string{"A": "1"}},
		{name: "spaces around", in: "  A = 1  \n", want: map[string]string{"A": "1"}},
		{name: "value with =", in: `DIFY_INPUTS={"a":"b=c"}` + "\n", want: map[string]string{"DIFY_INPUTS": `{"a":"b=c"}`}},
		{name: "double quotes", in: `A="x # not a comment"` + "\n" + `B="line\nnext \"q\" \\"` + "\n", want: map[string]string{"A": "x # not a comment", "B": "line\nnext \"q\" \\"}, quoted: []string{"A", "B"}},
		{name: "single quotes are literal", in: `A='a\nb'` + " # c\n", want: map[string]string{"A": `a\nb`}, quoted: []string{"A"}},
		{name: "later wins", in: "A=1\nA=2\n", want: map[string]string{"A": "2"}},
		{name: "BOM", in: "\uFEFFA=1\n", want: map[string]string{"A": "1"}},
		{name: "CRLF", in: "A=1\r\nB=2\r\n", want: map[string]string{"A": "1", "B": "2"}},
		{name: "no equals", in: "A=1\nJUNK\n", wantErr: "line 2: want NAME=value"},
		{name: "bad name", in: "1A=x\n", wantErr: "line 1: want NAME=value"},
		{name: "unclosed quote", in: `A="open` + "\n", wantErr: "line 1: A: the closing \" is missing"},
		{name: "text after quote", in: `A="x" y` + "\n", wantErr: "line 1: A: text after the closing quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, err := parseDotenv(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseDotenv(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDotenv(%q): %v", tt.in, err)
			}
			got := map[string]string{}
			var quoted []string
			for _, l := range lines {
				got[l.name] = l.value
				if l.quoted {
					quoted = append(quoted, l.name)
				}
			}
			if !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(quoted, tt.quoted) {
				t.Errorf("parseDotenv(%q) = %q quoted %q, want %q quoted %q", tt.in, got, quoted, tt.want, tt.quoted)
			}
		})
	}
}

func TestWithEnvFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "prod.env")
	os.WriteFile(file, []byte("DIFY_API_KEY=\"app-from-file\"\nLOG_LEVEL=debug\nHTTP_ADDR=:9000\n"), 0o600)
	real := env(map[string]string{"LOG_LEVEL": "warn", "HTTP_ADDR": ""})

	var stderr bytes.Buffer
	getenv, err := withEnvFile(real, file, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"LOG_LEVEL":    "warn",          // The environment wins.
		"HTTP_ADDR":    ":9000",         // An empty variable counts as unset, as everywhere in difybot.
		"DIFY_API_KEY": "app-from-file", // Quotes removed...
	} {
		if got := getenv(k); got != want {
			t.Errorf("getenv(%s) = %q, want %q", k, got, want)
		}
	}
	// ... with the warning that docker run --env-file would keep them; the value itself is never printed.
	if w := stderr.String(); !strings.Contains(w, "prod.env:1: DIFY_API_KEY is wrapped in quotes") || strings.Contains(w, "app-from-file") {
		t.Errorf("warning = %q", w)
	}

	if _, err := withEnvFile(real, filepath.Join(dir, "missing.env"), &stderr); err == nil {
		t.Error("a missing -env-file is not an error")
	}
	t.Chdir(dir) // No ./.env here: the environment alone.
	if getenv, err := withEnvFile(real, "", &stderr); err != nil || getenv("DIFY_API_KEY") != "" {
		t.Errorf("without ./.env: %v, key %q", err, getenv("DIFY_API_KEY"))
	}
	os.WriteFile(filepath.Join(dir, ".env"), []byte("DIFY_API_KEY=app-dot-env\n"), 0o600)
	if getenv, err := withEnvFile(real, "", &stderr); err != nil || getenv("DIFY_API_KEY") != "app-dot-env" {
		t.Errorf("with ./.env: %v", err)
	}
}
