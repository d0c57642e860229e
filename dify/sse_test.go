package dify

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func collect(t testing.TB, r io.Reader) ([]string, error) {
	t.Helper()
	var got []string
	err := readEvents(r, func(d []byte) error {
		got = append(got, string(d))
		return nil
	})
	return got, err
}

func TestReadEvents(t *testing.T) {
	big := strings.Repeat("x", 5<<20) // Node outputs of several MB arrive on one data line.
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"1.x compact", "data: {\"event\":\"a\"}\n\ndata: {\"event\":\"b\"}\n\n", []string{`{"event":"a"}`, `{"event":"b"}`}},
		{"0.6 spacing", "data: {\"event\": \"a\", \"data\": {}}\n\n", []string{`{"event": "a", "data": {}}`}},
		{"ping", "event: ping\n\ndata: {\"event\":\"a\"}\n\nevent: ping\n\n", []string{`{"event":"ping"}`, `{"event":"a"}`, `{"event":"ping"}`}},
		{"CRLF", "data: {\"event\":\"a\"}\r\n\r\n", []string{`{"event":"a"}`}},
		{"comment and id ignored", ": hello\nid: 7\nretry: 10\ndata: {}\n\n", []string{`{}`}},
		{"no space after colon", "data:{\"event\":\"a\"}\n\n", []string{`{"event":"a"}`}},
		{"multi-line data joined", "data: {\"a\":\ndata: 1}\n\n", []string{"{\"a\":\n1}"}},
		{"cut without blank line", "data: {\"event\":\"a\"}\n\ndata: {\"event\":\"b\"}", []string{`{"event":"a"}`, `{"event":"b"}`}},
		{"empty stream", "", nil},
		{"long line", "data: {\"t\":\"" + big + "\"}\n\n", []string{`{"t":"` + big + `"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time proves the reader does not depend on how the network chunks the stream.
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.HalfReader(strings.NewReader(tt.in))} {
				got, err := collect(t, r)
				if err != nil {
					t.Fatalf("readEvents: %v", err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d events, want %d", len(got), len(tt.want))
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Errorf("event %d = %.80q, want %.80q", i, got[i], tt.want[i])
					}
				}
			}
		})
	}
}

func TestReadEventsErrors(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("data: {\"event\":\"a\"}\n\n"), iotest.ErrReader(boom))
	got, err := collect(t, r)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if len(got) != 1 {
		t.Errorf("got %d events before the error, want 1", len(got))
	}

	huge := io.MultiReader(strings.NewReader("data: "), io.LimitReader(zeros{}, maxEventBytes+10))
	if _, err := collect(t, huge); !errors.Is(err, errEventTooLarge) {
		t.Errorf("oversize event: err = %v, want errEventTooLarge", err)
	}

	stop := errors.New("stop")
	if err := readEvents(strings.NewReader("data: 1\n\ndata: 2\n\n"), func([]byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("callback error: err = %v, want %v", err, stop)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func FuzzReadEvents(f *testing.F) {
	f.Add([]byte("data: {\"event\":\"workflow_started\"}\n\nevent: ping\n\n"))
	f.Add([]byte("data: {\"event\": \"a\"}\r\n\r\ndata:x\ndata:y"))
	f.Add([]byte(": c\nid: 1\n\n\n\ndata"))
	f.Fuzz(func(t *testing.T, in []byte) {
		in = bytes.ReplaceAll(in, []byte("\r"), nil) // Keeps the size bound below simple.
		var total int
		err := readEvents(bytes.NewReader(in), func(d []byte) error {
			if len(bytes.TrimSpace(d)) == 0 {
				t.Fatalf("empty payload delivered")
			}
			total += len(d)
			return nil
		})
		if err != nil {
			t.Fatalf("readEvents on an in-memory stream: %v", err)
		}
		if total > len(in)*len(pingEvent) {
			t.Fatalf("delivered %d bytes from %d input bytes", total, len(in))
		}
		// The stream parser feeds the run state machine; it must never panic on what it delivers either.
		var st runState
		_ = readEvents(bytes.NewReader(in), func(d []byte) error {
			var ev Event
			if jsonErr := json.Unmarshal(d, &ev); jsonErr == nil {
				st.observe(ev)
			}
			return nil
		})
	})
}
