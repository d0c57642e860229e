package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// defaultEnvFile is read when it exists and --env-file is not given, so a copy of .env.example just works.
const defaultEnvFile = ".env"

// dotenvLine is one assignment of a .env file.
type dotenvLine struct {
	line   int
	name   string
	value  string
	quoted bool // The value was wrapped in quotes, which parseDotenv removed.
}

// parseDotenv reads KEY=VALUE lines: blank lines and lines starting with # are skipped, "export " is allowed
// before a name, a value may be wrapped in single quotes (taken as written) or double quotes (\n, \t, \" and \\
// understood), and an unquoted value ends at " #" (a comment). It reports every malformed line, with its number.
func parseDotenv(r io.Reader) ([]dotenvLine, error) {
	var out []dotenvLine
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		s := strings.TrimSpace(sc.Text())
		if n == 1 {
			s = strings.TrimPrefix(s, "\uFEFF") // A BOM from a Windows editor.
		}
		if s == "" || s[0] == '#' {
			continue
		}
		s = strings.TrimPrefix(s, "export ")
		name, value, ok := strings.Cut(s, "=")
		name = strings.TrimSpace(name)
		if !ok || !isEnvName(name) {
			errs = append(errs, fmt.Errorf("line %d: want NAME=value", n))
			continue
		}
		v, quoted, err := dotenvValue(strings.TrimSpace(value))
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s: %v", n, name, err))
			continue
		}
		out = append(out, dotenvLine{line: n, name: name, value: v, quoted: quoted})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

func dotenvValue(v string) (string, bool, error) {
	if v == "" || (v[0] != '"' && v[0] != '\'') {
		if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		return v, false, nil
	}
	q := v[0]
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == q:
			if rest := strings.TrimSpace(v[i+1:]); rest != "" && rest[0] != '#' {
				return "", false, fmt.Errorf("text after the closing quote")
			}
			return b.String(), true, nil
		case c == '\\' && q == '"' && i+1 < len(v):
			i++
			switch v[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default: // \" and \\, and any other escaped byte as itself.
				b.WriteByte(v[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", false, fmt.Errorf("the closing %c is missing", q)
}

func isEnvName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// withEnvFile returns a getenv that reads path as a .env file under the real environment: a variable set in the
// process's environment wins over the file, as in docker compose. With path empty, ./.env is read when it exists;
// a path given explicitly must exist. Quoted values work but draw a warning on stderr, because docker run
// --env-file keeps the quotes as part of the value.
func withEnvFile(getenv func(string) string, path string, stderr io.Writer) (func(string) string, error) {
	explicit := path != ""
	if !explicit {
		path = defaultEnvFile
	}
	b, err := os.ReadFile(path)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return getenv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read env file: %w", err)
	}
	lines, err := parseDotenv(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("env file %s: %w", path, err)
	}
	file := make(map[string]string, len(lines))
	for _, l := range lines {
		file[l.name] = l.value
		if l.quoted && l.value != "" {
			fmt.Fprintf(stderr, "difybot: warning: %s:%d: %s is wrapped in quotes; difybot and docker compose remove them, but docker run --env-file keeps them as part of the value\n", path, l.line, l.name)
		}
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return file[k]
	}, nil
}
