package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/difybot/difybot/bot/store/storetest"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/internal/loadtest"
	"github.com/difybot/difybot/platforms/web"
	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"
)

const testAdminToken = "test-admin-token-0123456789"

// binary returns difybot's binary, built once for all the tests of this package.
func binary(t testing.TB) string {
	t.Helper()
	bin, err := loadtest.BuildOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := loadtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// proc is one difybot serve process.
type proc struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
}

func startServe(t testing.TB, env map[string]string) *proc {
	t.Helper()
	p := &proc{addr: freeAddr(t), logs: &bytes.Buffer{}}
	p.cmd = exec.Command(binary(t), "serve")
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HTTP_ADDR=" + p.addr, "WEB_CHAT=on", "ADMIN_TOKEN=" + testAdminToken, "DIFY_API_KEY=app-test"}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("logs of serve at %s:\n%s", p.addr, p.logs)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + p.addr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not become healthy: %v\n%s", err, p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// send posts a message to the web chat in a session of its own and returns the run id.
func (p *proc) send(t testing.TB, text string, img []byte) string {
	t.Helper()
	return p.sendIn(t, "session-"+web.NewID(), text, img)
}

// finalReply follows a run's events on p until its final reply.
func (p *proc) finalReply(t testing.TB, runID string) web.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.addr+"/api/runs/"+runID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev web.Event
			json.Unmarshal([]byte(data), &ev)
			if ev.Type == "reply" && ev.Final {
				return ev
			}
		}
	}
	t.Fatalf("no final reply for %s: %v", runID, sc.Err())
	return web.Event{}
}

func openDB(t testing.TB, dataDir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "difybot.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestKilledMidRunIsAnsweredOnceAfterRestart kills serve with SIGKILL while Dify is running the workflow (or a
// chat app is writing its answer), starts it again on the same data, and checks the message is answered
// exactly once without a second run: by the run's id for a workflow, by the message's id for a chat app.
func TestKilledMidRunIsAnsweredOnceAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	for _, tt := range []struct {
		shape, column, route, readBack string
	}{
		{difytest.DefaultShape, "dify_run_id", difytest.RouteRun, difytest.RouteRunDetail},
		{"chatbot", "dify_message_id", difytest.RouteChat, difytest.RouteMessages},
	} {
		t.Run(tt.shape, func(t *testing.T) {
			sim := difytest.NewServer(difytest.Options{Shape: tt.shape, Latency: 400 * time.Millisecond, PingEvery: 50 * time.Millisecond})
			defer sim.Close()
			dataDir := t.TempDir()
			env := map[string]string{"DIFY_BASE_URL": sim.URL(), "DATA_DIR": dataDir}

			a := startServe(t, env)
			runID := a.send(t, "what is this?", pngFile(t))
			// Kill only once Dify's id for the work is stored: that is what a crash after Dify started looks like.
			db := openDB(t, dataDir)
			deadline := time.Now().Add(30 * time.Second)
			for {
				var id string
				db.QueryRow("SELECT "+tt.column+" FROM runs WHERE id = ?", runID).Scan(&id)
				if id != "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the run never started in Dify\n%s", a.logs)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			a.cmd.Wait()

			b := startServe(t, env)
			ev := b.finalReply(t, runID)
			if !strings.Contains(ev.Text, "PNG image, 20×10 px") || ev.Code != "" {
				t.Errorf("final reply after restart = %+v", ev)
			}
			if sim.Started() != 1 || sim.Calls(tt.route) != 1 {
				t.Errorf("runs started %d, POSTs %d; want 1 and 1", sim.Started(), sim.Calls(tt.route))
			}
			if sim.Calls(tt.readBack) == 0 {
				t.Errorf("the restarted bot did not read the answer back from Dify (%s)", tt.readBack)
			}
			// A graceful stop of the second process ends cleanly, and leaves nothing in flight to count.
			b.cmd.Process.Signal(syscall.SIGTERM)
			if err := b.cmd.Wait(); err != nil {
				t.Errorf("serve after SIGTERM: %v", err)
			}
			var replies int
			db.QueryRow("SELECT count(*) FROM steps WHERE run_id = ? AND name = 'reply' AND status = 'done'", runID).Scan(&replies)
			if replies != 1 {
				t.Errorf("%d reply steps done, want exactly 1", replies)
			}
		})
	}
}

func pngFile(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(writePNG(t, 20, 10))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTwoReplicasShareOnePostgres runs two serve processes on one PostgreSQL and sends 200 messages, half to
// each: every message is answered once, none is lost, and no workflow runs twice.
func TestTwoReplicasShareOnePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	dbURL := storetest.Database(t)
	sim := difytest.NewServer(difytest.Options{Latency: 5 * time.Millisecond, PingEvery: time.Second})
	defer sim.Close()
	env := map[string]string{"DIFY_BASE_URL": sim.URL(), "DATABASE_URL": dbURL}
	a := startServe(t, mergeEnv(env, "DATA_DIR", t.TempDir()))
	b := startServe(t, mergeEnv(env, "DATA_DIR", t.TempDir()))

	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		p := a
		if i%2 == 1 {
			p = b
		}
		wg.Go(func() { p.send(t, fmt.Sprintf("message %d", i), nil) })
	}
	wg.Wait()

	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(60 * time.Second)
	for {
		var done int
		conn.QueryRow(t.Context(), "SELECT count(*) FROM runs WHERE status = 'succeeded'").Scan(&done)
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d runs succeeded after 60 s", done, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Stop both gracefully so nothing is in flight when counting.
	for _, p := range []*proc{a, b} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
	}
	var runs, badReplies, workers int
	conn.QueryRow(t.Context(), "SELECT count(*) FROM runs").Scan(&runs)
	conn.QueryRow(t.Context(), `SELECT count(*) FROM (SELECT r.id FROM runs r LEFT JOIN steps s ON s.run_id = r.id AND s.name = 'reply' AND s.status = 'done'
		GROUP BY r.id HAVING count(s.run_id) <> 1) x`).Scan(&badReplies)
	conn.QueryRow(t.Context(), "SELECT count(DISTINCT attempted_by[array_length(attempted_by, 1)]) FROM river_job").Scan(&workers)
	if runs != n || sim.Started() != n || badReplies != 0 {
		t.Errorf("runs %d, workflow runs %d, runs without exactly one reply %d; want %d, %d, 0", runs, sim.Started(), badReplies, n, n)
	}
	if workers != 2 {
		t.Errorf("jobs were worked by %d replicas, want 2", workers)
	}
}

// TestKilledReplicaIsTakenOver kills one of two replicas on PostgreSQL with SIGKILL while Dify runs its
// workflow: the other takes the run over within REPLICA_TIMEOUT (not River's rescuer's DIFY_TIMEOUT + 3 min),
// reads it back from Dify instead of running it again, and answers once.
func TestKilledReplicaIsTakenOver(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	dbURL := storetest.Database(t)
	sim := difytest.NewServer(difytest.Options{Latency: 2 * time.Second, PingEvery: 100 * time.Millisecond})
	defer sim.Close()
	env := map[string]string{"DIFY_BASE_URL": sim.URL(), "DATABASE_URL": dbURL, "REPLICA_TIMEOUT": "3s"}
	// A alone works the queue until Dify runs its message; only then does B start, and A die.
	a := startServe(t, mergeEnv(env, "DATA_DIR", t.TempDir()))
	runID := a.send(t, "what is this?", nil)

	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for {
		var difyRun string
		conn.QueryRow(t.Context(), "SELECT dify_run_id FROM runs WHERE id = $1", runID).Scan(&difyRun)
		if difyRun != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never started in Dify\n%s", a.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b := startServe(t, mergeEnv(env, "DATA_DIR", t.TempDir()))
	killed := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()

	deadline = time.Now().Add(2 * time.Minute)
	for {
		var status string
		conn.QueryRow(t.Context(), "SELECT status FROM runs WHERE id = $1", runID).Scan(&status)
		if status == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed replica's run is %q 2 minutes later\n%s", status, b.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("answered by the other replica %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.cmd.Wait()
	var replies int
	var reply string
	conn.QueryRow(t.Context(), "SELECT count(*) FROM steps WHERE run_id = $1 AND name = 'reply' AND status = 'done'", runID).Scan(&replies)
	conn.QueryRow(t.Context(), "SELECT reply FROM runs WHERE id = $1", runID).Scan(&reply)
	if replies != 1 || !strings.Contains(reply, "You said: what is this?") {
		t.Errorf("%d reply steps done, reply %q; want exactly one with the answer", replies, reply)
	}
	// The killed replica's run was read back, not posted again.
	if sim.Started() != 1 || sim.Calls(difytest.RouteRun) != 1 || sim.Calls(difytest.RouteRunDetail) == 0 {
		t.Errorf("runs started %d, POSTs %d, detail reads %d; want 1, 1, >0", sim.Started(), sim.Calls(difytest.RouteRun), sim.Calls(difytest.RouteRunDetail))
	}
}

func mergeEnv(env map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
