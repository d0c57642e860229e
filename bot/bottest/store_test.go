package bottest_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/bot/store/storetest"
)

// subject is one bot.Store under the contract, with a way to read back what the pipeline wrote.
type subject struct {
	bot.Store
	steps func(t *testing.T, runID string) []bot.Step
	nodes func(t *testing.T, runID string) []bot.NodeEvent
}

// eachStore runs fn on the in-memory Store and, to show it keeps the same contract, on bot/store over SQLite.
// fn opens a fresh store with open for each case. (Each test calls eachStore once: a repeated subtest name
// gets a "#01" suffix, and a "#" in the SQLite file's path would cut its URI short.)
func eachStore(t *testing.T, fn func(t *testing.T, open func(t *testing.T) subject)) {
	t.Run("memory", func(t *testing.T) {
		fn(t, func(*testing.T) subject {
			_, s := memSubject()
			return s
		})
	})
	t.Run("sqlite", func(t *testing.T) {
		fn(t, func(t *testing.T) subject {
			st := storetest.SQLite(t).Open(t)
			return subject{Store: st,
				steps: func(t *testing.T, id string) []bot.Step {
					out, err := st.Steps(t.Context(), id)
					if err != nil {
						t.Fatal(err)
					}
					return out
				},
				nodes: func(t *testing.T, id string) []bot.NodeEvent {
					out, err := st.NodeEvents(t.Context(), id)
					if err != nil {
						t.Fatal(err)
					}
					return out
				}}
		})
	})
}

// memSubject is the in-memory Store with its accessors, for the checks only it can answer (Queued).
func memSubject() (*bottest.Store, subject) {
	m := bottest.NewStore()
	return m, subject{Store: m,
		steps: func(_ *testing.T, id string) []bot.Step { return m.Steps(id) },
		nodes: func(_ *testing.T, id string) []bot.NodeEvent { return m.NodeEvents(id) }}
}

func msg(platform, eventID string) bot.Message {
	return bot.Message{Platform: platform, EventID: eventID, ChatID: "C1", UserID: "U1", Text: "hello",
		ReceivedAt: time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC), Extra: map[string]string{"k": "v"},
		Files: []bot.File{{ID: "F1", Name: "a.png"}}}
}

func TestEnqueueDeduplicates(t *testing.T) {
	tests := []struct {
		name          string
		first, second bot.Message
		dup           bool
	}{
		{"same platform and event", msg("slack", "Ev1"), msg("slack", "Ev1"), true},
		{"same event on another platform", msg("slack", "Ev1"), msg("line", "Ev1"), false},
		{"another event", msg("slack", "Ev1"), msg("slack", "Ev2"), false},
		{"no event id never dedups", msg("slack", ""), msg("slack", ""), false},
	}
	eachStore(t, func(t *testing.T, open func(t *testing.T) subject) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(t)
				a, dup, err := s.Enqueue(t.Context(), tt.first)
				if err != nil || dup {
					t.Fatalf("first Enqueue = %v, dup %v", err, dup)
				}
				if a.ID == "" || a.Status != bot.RunQueued || a.Attempt != 1 || a.Platform != tt.first.Platform ||
					a.EventID != tt.first.EventID || a.CreatedAt.IsZero() || a.Message.Text != "hello" {
					t.Errorf("new run = %+v", a)
				}
				b, dup, err := s.Enqueue(t.Context(), tt.second)
				if err != nil || dup != tt.dup {
					t.Fatalf("second Enqueue = %v, dup %v, want dup %v", err, dup, tt.dup)
				}
				if tt.dup != (a.ID == b.ID) {
					t.Errorf("ids %s and %s; dup %v", a.ID, b.ID, tt.dup)
				}
			})
		}
		t.Run("no platform", func(t *testing.T) {
			if _, _, err := open(t).Enqueue(t.Context(), bot.Message{EventID: "Ev1"}); err == nil {
				t.Error("Enqueue accepted a message without a platform")
			}
		})
	})

	m, s := memSubject()
	first, _, _ := s.Enqueue(t.Context(), msg("slack", "Ev1"))
	s.Enqueue(t.Context(), msg("slack", "Ev1"))
	second, _, _ := s.Enqueue(t.Context(), msg("slack", "Ev2"))
	if got, want := m.Queued(), []string{first.ID, second.ID}; !slices.Equal(got, want) {
		t.Errorf("Queued = %v, want %v (a duplicate queues nothing)", got, want)
	}
}

func TestEnqueueConcurrentDuplicates(t *testing.T) {
	m, s := memSubject()
	var wg sync.WaitGroup
	ids := make([]string, 20)
	dups := make([]bool, 20)
	for i := range ids {
		wg.Go(func() {
			r, dup, err := s.Enqueue(t.Context(), msg("slack", "EvSame"))
			if err != nil {
				t.Error(err)
			}
			ids[i], dups[i] = r.ID, dup
		})
	}
	wg.Wait()
	fresh := 0
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("Enqueue %d returned run %s, want %s", i, id, ids[0])
		}
		if !dups[i] {
			fresh++
		}
	}
	if fresh != 1 || len(m.Queued()) != 1 {
		t.Errorf("%d fresh runs and %d queued; want one of each", fresh, len(m.Queued()))
	}
}

func TestSaveRun(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(t *testing.T, s subject, r *bot.Run) // Before saving r.
		wantErr error
	}{
		{"current attempt", func(*testing.T, subject, *bot.Run) {}, nil},
		{"unknown run", func(_ *testing.T, _ subject, r *bot.Run) { r.ID = "r_00000000000000000000000000" }, bot.ErrNotFound},
		{"stale attempt", func(t *testing.T, s subject, r *bot.Run) {
			finished := *r
			finished.Status = bot.RunSucceeded
			if err := s.SaveRun(t.Context(), finished); err != nil {
				t.Fatal(err)
			}
			if err := s.Requeue(t.Context(), r.ID, 1); err != nil {
				t.Fatal(err)
			}
		}, bot.ErrStaleAttempt},
		{"newer attempt than stored", func(_ *testing.T, _ subject, r *bot.Run) { r.Attempt = 2 }, bot.ErrStaleAttempt},
	}
	eachStore(t, func(t *testing.T, open func(t *testing.T) subject) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(t)
				r, _, err := s.Enqueue(t.Context(), msg("web", "EvSave"))
				if err != nil {
					t.Fatal(err)
				}
				d := bot.Diagnose(bot.Classified(bot.CodeDifyRateLimited, "run", errors.New("429")))
				save := r
				save.Status, save.Reply, save.Code, save.Diagnosis = bot.RunFailed, "sorry", d.Code, &d
				save.FinishedAt, save.DifyRunID, save.ConversationID = time.Now(), "wr-1", "conv-1"
				save.State, save.PostedAttempt, save.HeldNotified = map[string]string{"ts": "1.2"}, 1, true
				// What belongs to Enqueue and Requeue is not saved.
				save.Message.Text, save.CreatedAt, save.Platform = "changed", time.Unix(1, 0), "other"
				tt.edit(t, s, &save)
				err = s.SaveRun(t.Context(), save)
				if !errors.Is(err, tt.wantErr) || (tt.wantErr != nil) != (err != nil) {
					t.Fatalf("SaveRun = %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr != nil {
					return
				}
				got, err := s.Run(t.Context(), r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != bot.RunFailed || got.Reply != "sorry" || got.Code != bot.CodeDifyRateLimited ||
					got.Diagnosis == nil || got.Diagnosis.Summary != d.Summary || got.FinishedAt.IsZero() ||
					got.DifyRunID != "wr-1" || got.ConversationID != "conv-1" || got.State["ts"] != "1.2" ||
					got.PostedAttempt != 1 || !got.HeldNotified {
					t.Errorf("saved run = %+v", got)
				}
				if got.Message.Text != "hello" || !got.CreatedAt.Equal(r.CreatedAt) || got.Platform != "web" || got.Attempt != 1 {
					t.Errorf("SaveRun changed what it must not: %+v", got)
				}
				if got.UpdatedAt.Before(r.UpdatedAt) {
					t.Errorf("UpdatedAt went back: %v before %v", got.UpdatedAt, r.UpdatedAt)
				}
			})
		}
	})
}

func TestRequeue(t *testing.T) {
	tests := []struct {
		status  bot.RunStatus
		wantErr error
	}{
		{bot.RunSucceeded, nil},
		{bot.RunFailed, nil},
		{bot.RunQueued, bot.ErrNotFinished},
		{bot.RunRunning, bot.ErrNotFinished},
		{bot.RunHeld, bot.ErrNotFinished},
	}
	eachStore(t, func(t *testing.T, open func(t *testing.T) subject) {
		for _, tt := range tests {
			t.Run(string(tt.status), func(t *testing.T) {
				s := open(t)
				r, _, err := s.Enqueue(t.Context(), msg("web", "EvRequeue"))
				if err != nil {
					t.Fatal(err)
				}
				d := bot.Diagnose(errors.New("boom"))
				r.Status, r.Reply, r.Code, r.Diagnosis, r.HeldNotified = tt.status, "answer", d.Code, &d, true
				r.FinishedAt, r.DifyRunID, r.DifyTaskID, r.ConversationID = time.Now(), "wr-1", "task-1", "conv-1"
				r.State, r.PostedAttempt, r.RepliedAttempt = map[string]string{"ts": "1.2"}, 1, 1
				if err := s.SaveRun(t.Context(), r); err != nil {
					t.Fatal(err)
				}
				if err := s.Requeue(t.Context(), r.ID, 2); !errors.Is(err, bot.ErrStaleAttempt) {
					t.Fatalf("Requeue of attempt 2 at attempt 1 = %v, want ErrStaleAttempt", err)
				}
				err = s.Requeue(t.Context(), r.ID, 1)
				if !errors.Is(err, tt.wantErr) || (tt.wantErr != nil) != (err != nil) {
					t.Fatalf("Requeue = %v, want %v", err, tt.wantErr)
				}
				got, _ := s.Run(t.Context(), r.ID)
				if tt.wantErr != nil {
					if got.Attempt != 1 || got.Status != tt.status {
						t.Errorf("a refused Requeue changed the run: %+v", got)
					}
					return
				}
				// The same press again (a replay): attempt 1 was retried, so nothing changes.
				if err := s.Requeue(t.Context(), r.ID, 1); !errors.Is(err, bot.ErrStaleAttempt) {
					t.Errorf("Requeue of attempt 1 again = %v, want ErrStaleAttempt", err)
				}
				if again, _ := s.Run(t.Context(), r.ID); again.Attempt != 2 || again.Status != bot.RunQueued {
					t.Errorf("a replayed Requeue changed the run: attempt %d %s", again.Attempt, again.Status)
				}
				// A fresh attempt: the outcome is cleared; message, conversation, state and the attempt marks stay.
				want := bot.Run{Attempt: 2, Status: bot.RunQueued, ConversationID: "conv-1", PostedAttempt: 1, RepliedAttempt: 1}
				if got.Attempt != want.Attempt || got.Status != want.Status || got.Reply != "" || got.Code != "" ||
					got.Diagnosis != nil || got.HeldNotified || !got.FinishedAt.IsZero() || got.DifyRunID != "" ||
					got.DifyTaskID != "" || got.ConversationID != want.ConversationID || got.State["ts"] != "1.2" ||
					got.PostedAttempt != want.PostedAttempt || got.RepliedAttempt != want.RepliedAttempt ||
					got.Message.Text != "hello" {
					t.Errorf("requeued run = %+v", got)
				}
			})
		}
		t.Run("unknown run", func(t *testing.T) {
			s := open(t)
			if err := s.Requeue(t.Context(), "r_00000000000000000000000000", 0); !errors.Is(err, bot.ErrNotFound) {
				t.Errorf("Requeue of an unknown run = %v, want ErrNotFound", err)
			}
			if _, err := s.Run(t.Context(), "r_00000000000000000000000000"); !errors.Is(err, bot.ErrNotFound) {
				t.Errorf("Run of an unknown run = %v, want ErrNotFound", err)
			}
		})
	})

	m, s := memSubject()
	r, _, _ := s.Enqueue(t.Context(), msg("web", "EvQ"))
	r.Status = bot.RunSucceeded
	s.SaveRun(t.Context(), r)
	s.Requeue(t.Context(), r.ID, 0)
	other, _, _ := s.Enqueue(t.Context(), msg("web", "EvQ2"))
	if got, want := m.Queued(), []string{r.ID, r.ID, other.ID}; !slices.Equal(got, want) {
		t.Errorf("Queued = %v, want %v", got, want)
	}
}

func TestStepsAndNodeEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(t *testing.T) subject) {
		s := open(t)
		r, _, err := s.Enqueue(t.Context(), msg("web", "EvSteps"))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for i, name := range []string{"receive", "enqueue", "run"} {
			st := bot.Step{RunID: r.ID, Attempt: 1, N: i + 1, Of: 5, Name: name, Status: "done", Start: start, Duration: time.Millisecond}
			if name == "run" {
				st.Fields = map[string]any{"bytes": 42, "file_id": "f1"}
			}
			if err := s.AddStep(t.Context(), st); err != nil {
				t.Fatal(err)
			}
		}
		for i, ev := range []string{"node_started", "node_finished"} {
			if err := s.AddNodeEvents(t.Context(), bot.NodeEvent{RunID: r.ID, Seq: i + 1, Event: ev, NodeID: "llm", Title: "LLM", At: start}); err != nil {
				t.Fatal(err)
			}
		}
		steps := s.steps(t, r.ID)
		var names []string
		for _, st := range steps {
			names = append(names, fmt.Sprintf("%d/%d %s", st.N, st.Of, st.Name))
		}
		if want := []string{"1/5 receive", "2/5 enqueue", "3/5 run"}; !slices.Equal(names, want) {
			t.Errorf("steps = %v, want %v", names, want)
		}
		if f := steps[2].Fields; f["bytes"] != float64(42) || f["file_id"] != "f1" || steps[0].Fields != nil {
			t.Errorf("fields = %#v, %#v; want JSON-decoded numbers and nil for none", f, steps[0].Fields)
		}
		if !steps[0].Start.Equal(start) || steps[0].Duration != time.Millisecond {
			t.Errorf("step times = %v %v", steps[0].Start, steps[0].Duration)
		}
		nodes := s.nodes(t, r.ID)
		if len(nodes) != 2 || nodes[0].Event != "node_started" || nodes[1].Seq != 2 || !nodes[1].At.Equal(start) {
			t.Errorf("node events = %+v", nodes)
		}
		if got := s.steps(t, "r_none"); len(got) != 0 {
			t.Errorf("steps of an unknown run = %v", got)
		}
		if err := s.AddStep(t.Context(), bot.Step{RunID: "r_none", N: 1}); err == nil {
			t.Error("AddStep accepted a step of an unknown run")
		}
		if err := s.AddNodeEvents(t.Context(), bot.NodeEvent{RunID: "r_none"}); err == nil {
			t.Error("AddNodeEvent accepted an event of an unknown run")
		}
	})
	m := bottest.NewStore()
	if err := m.AddStep(t.Context(), bot.Step{RunID: "r_none", N: 1}); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("AddStep for an unknown run = %v, want ErrNotFound", err)
	}
	if err := m.AddNodeEvents(t.Context(), bot.NodeEvent{RunID: "r_none"}); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("AddNodeEvent for an unknown run = %v, want ErrNotFound", err)
	}
}

func TestConversation(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(t *testing.T) subject) {
		s := open(t)
		steps := []struct{ set, want string }{{"", ""}, {"conv-1", "conv-1"}, {"conv-2", "conv-2"}}
		for _, st := range steps {
			if st.set != "" {
				if err := s.SetConversation(t.Context(), "web:C1", st.set); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.Conversation(t.Context(), "web:C1"); err != nil || got != st.want {
				t.Errorf("Conversation = %q, %v; want %q", got, err, st.want)
			}
		}
		if got, _ := s.Conversation(t.Context(), "web:C2"); got != "" {
			t.Errorf("another key's conversation = %q", got)
		}
	})
}

// TestStoreHandsOutCopies shows a caller cannot change what is stored by changing what it passed or got.
func TestStoreHandsOutCopies(t *testing.T) {
	s := bottest.NewStore()
	m := msg("web", "EvCopy")
	r, _, _ := s.Enqueue(t.Context(), m)
	m.Extra["k"], m.Files[0].ID = "changed", "changed"
	r.Message.Extra["k"], r.State = "changed", map[string]string{"a": "b"}
	got, _ := s.Run(t.Context(), r.ID)
	if got.Message.Extra["k"] != "v" || got.Message.Files[0].ID != "F1" || got.State != nil {
		t.Errorf("stored run changed through the caller's values: %+v", got)
	}
	fields := map[string]any{"n": 1}
	s.AddStep(t.Context(), bot.Step{RunID: r.ID, N: 1, Fields: fields})
	fields["n"] = 2
	s.Steps(r.ID)[0].Fields["n"] = 3
	if n := s.Steps(r.ID)[0].Fields["n"]; n != float64(1) {
		t.Errorf("stored step field = %v, want 1", n)
	}
}

func TestPendingContract(t *testing.T) { storetest.PendingContract(t, bottest.NewStore()) }

func TestOutputFilesContract(t *testing.T) { storetest.OutputFilesContract(t, bottest.NewStore()) }

func TestQuestionContract(t *testing.T) { storetest.QuestionContract(t, bottest.NewStore()) }
