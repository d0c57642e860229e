package main

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/difybot/difybot/config"
)

// TestHelp: every command explains itself on -h and --help, with its flags and, where the configuration matters,
// the variables by group and where they are explained.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		var stdout bytes.Buffer
		if err := run(context.Background(), args, env(nil), nil, &stdout, &bytes.Buffer{}); err != nil {
			t.Fatalf("difybot %v: %v", args, err)
		}
		for _, c := range commands {
			if !strings.Contains(stdout.String(), "  "+c.name+" ") {
				t.Errorf("difybot %v does not list %s:\n%s", args, c.name, stdout.String())
			}
		}
	}
	for _, c := range commands {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), args, env(nil), nil, &stdout, &stderr); err != nil {
				t.Fatalf("difybot %v: %v\n%s", args, err, stderr.String())
			}
			out := stdout.String()
			if !strings.HasPrefix(out, "usage: difybot "+c.name) {
				t.Errorf("difybot %v starts %q", args, out[:min(len(out), 60)])
			}
			if c.groups == nil {
				continue
			}
			if !strings.Contains(out, "-env-file F") || !strings.Contains(out, ".env.example") {
				t.Errorf("difybot %v lacks -env-file or .env.example:\n%s", args, out)
			}
			for _, g := range config.Groups() {
				for _, v := range g.Vars {
					if slices.Contains(c.groups, g.Title) != strings.Contains(out, "    "+v.Name+" ") {
						t.Errorf("difybot %v: %s listed = %v, want %v", args, v.Name, !slices.Contains(c.groups, g.Title), slices.Contains(c.groups, g.Title))
					}
				}
			}
		}
	}
}

func TestUsageMistakes(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"doctor", "-bogus"}, {"serve", "extra"}, {"run", "-env-file"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, env(nil), nil, &stdout, &stderr)
		var ex exitError
		if !errors.As(err, &ex) || ex != 2 || !strings.Contains(stderr.String(), "usage: difybot") {
			t.Errorf("difybot %v = %v, stderr:\n%s", args, err, stderr.String())
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"version"}, env(nil), nil, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if out := stdout.String(); !strings.HasPrefix(out, "difybot ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version = %q", out)
	}
}
