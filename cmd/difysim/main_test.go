package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

func TestList(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"-list"}, &out, &errb); err != nil {
		t.Fatalf("run -list: %v (%s)", err, errb.String())
	}
	scenarioTable, shapeTable, ok := strings.Cut(strings.TrimSuffix(out.String(), "\n"), "\n\n")
	if !ok {
		t.Fatalf("no blank line between the scenarios and the shapes:\n%s", out.String())
	}
	lines := strings.Split(scenarioTable, "\n")
	if want := len(difytest.Scenarios()) + 1; len(lines) != want {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), want, out.String())
	}
	codeCol := strings.Index(lines[0], "CODE")
	descCol := strings.Index(lines[0], "DESCRIPTION")
	for i, s := range difytest.Scenarios() {
		line := lines[i+1]
		code := s.Code
		if code == "" {
			code = "-"
		}
		if !strings.HasPrefix(line, s.Name+" ") || !strings.HasPrefix(line[codeCol:], code+" ") || line[descCol:] != s.Description {
			t.Errorf("line %q is not aligned as %q %q %q", line, s.Name, code, s.Description)
		}
	}
	lines = strings.Split(shapeTable, "\n")
	if want := len(difytest.Shapes()) + 1; len(lines) != want || !strings.HasPrefix(lines[0], "SHAPE ") {
		t.Fatalf("shape table %q, want a header and %d rows", shapeTable, want-1)
	}
	descCol = strings.Index(lines[0], "DESCRIPTION")
	for i, s := range difytest.Shapes() {
		if line := lines[i+1]; !strings.HasPrefix(line, s.Name+" ") || line[descCol:] != s.Description {
			t.Errorf("line %q is not aligned as %q %q", line, s.Name, s.Description)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"-scenario", "nope"}, {"-shape", "nope"}, {"-nope"}, {"extra"}} {
		var out, errb bytes.Buffer
		err := run(t.Context(), args, &out, &errb)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("run %q = %v, want a usage error (exit 2)", args, err)
		}
	}
	err := run(t.Context(), []string{"-scenario", "nope"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown scenario "nope"`) {
		t.Errorf("unknown scenario: %v", err)
	}
	err = run(t.Context(), []string{"-shape", "nope"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown shape "nope"`) {
		t.Errorf("unknown shape: %v", err)
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr bytes.Buffer
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"-addr", "127.0.0.1:0", "-latency", "1m", "-key", "app-sim"}, io.Discard, &stderr,
			func(u string) { urls <- u })
	}()
	var base string
	select {
	case base = <-urls:
	case err := <-done:
		t.Fatalf("serve ended early: %v", err)
	}

	req, _ := http.NewRequest(http.MethodGet, base+"/info", nil)
	req.Header.Set("Authorization", "Bearer app-sim")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /v1/info: %d", resp.StatusCode)
	}

	// A stream still open at shutdown ends with its run stopped, and serve returns.
	req, _ = http.NewRequest(http.MethodPost, base+"/workflows/run",
		strings.NewReader(`{"inputs":{},"user":"u1","response_mode":"streaming"}`))
	req.Header.Set("Authorization", "Bearer app-sim")
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if first, _ := br.ReadString('\n'); !strings.HasPrefix(first, `data: {"event":"workflow_started"`) {
		t.Fatalf("first line %q", first)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(shutdownTimeout):
		t.Fatal("serve did not shut down")
	}
	rest, _ := io.ReadAll(br)
	if !bytes.Contains(rest, []byte(`"status":"stopped"`)) {
		t.Errorf("open stream did not end stopped:\n%s", rest)
	}
	log := stderr.String()
	banner := "difysim: serving the Dify Service API at " + base + " (scenario ok, shape default), accepting only the key given with -key.\n" +
		"Point difybot at it with:\n  DIFY_BASE_URL=" + base + "\n  DIFY_API_KEY=app-sim\n"
	if !strings.HasPrefix(log, banner) || !strings.HasPrefix(base, "http://127.0.0.1:") || !strings.HasSuffix(log, "difysim: stopped\n") {
		t.Errorf("log %q (base %s)", log, base)
	}
}

func TestServeShape(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr bytes.Buffer
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"-addr", "127.0.0.1:0", "-shape", "agent", "-scenario", "plan_limit"}, io.Discard, &stderr,
			func(u string) { urls <- u })
	}()
	var base string
	select {
	case base = <-urls:
	case err := <-done:
		t.Fatalf("serve ended early: %v", err)
	}
	// Without -key, any app- key is accepted (a made-up one from a README), and nothing else.
	for key, want := range map[string]int{"app-made-up-by-a-new-user": 200, "app-test": 200, "dataset-x": 401, "app-": 401} {
		req, _ := http.NewRequest(http.MethodGet, base+"/info", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 200 && !bytes.Contains(body, []byte(`"mode":"agent"`))) {
			t.Errorf("GET /v1/info with %s: %d %s", key, resp.StatusCode, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	if want := "(scenario plan_limit, shape agent), accepting any key that starts with app-.\n"; !strings.Contains(stderr.String(), want) {
		t.Errorf("banner %q does not say %q", stderr.String(), want)
	}
}

func TestBaseURL(t *testing.T) {
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", ":0")
	if err != nil {
		t.Skip(err)
	}
	defer ln.Close()
	if got := baseURL(ln.Addr()); !strings.HasPrefix(got, "http://127.0.0.1:") || !strings.HasSuffix(got, "/v1") {
		t.Errorf("baseURL(%v) = %q", ln.Addr(), got)
	}
}
