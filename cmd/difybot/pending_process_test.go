package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/web"
)

// sendIn posts a message to the web chat in session and returns the run id; send uses a fresh session each time,
// and a request spread over several messages needs them in one.
func (p *proc) sendIn(t testing.TB, session, text string, img []byte) string {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("id", web.NewID())
	mw.WriteField("session", session)
	mw.WriteField("text", text)
	if img != nil {
		fw, _ := mw.CreateFormFile("image", "photo.png")
		fw.Write(img)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/api/messages", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		RunID     string `json:"run_id"`
		Duplicate bool   `json:"duplicate"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusAccepted || out.Duplicate {
		t.Fatalf("send: %d %v duplicate=%v", res.StatusCode, err, out.Duplicate)
	}
	return out.RunID
}

// adminRun reads a run from the admin API.
func (p *proc) adminRun(t testing.TB, runID string) (status, reply string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/admin/runs/"+runID, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Run struct {
			Status string `json:"status"`
			Reply  string `json:"reply"`
		} `json:"run"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/runs/%s: %d %v", runID, res.StatusCode, err)
	}
	return out.Run.Status, out.Run.Reply
}

// killHard ends p with SIGKILL, as a crash or an OOM kill does: nothing is flushed or finished.
func (p *proc) killHard(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// stop ends p gracefully, so that nothing is in flight when the test counts.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
}

const askedForQuestion = "Got your photo. What would you like to know? Send your question."

// askPhotoAlone sends a photo without text in session to a required_text app and checks the person is asked for
// the question, with the app's suggested questions as choices, and that the photo waits as a pending request.
func askPhotoAlone(t *testing.T, p *proc, db *sql.DB, session string) string {
	t.Helper()
	photoRun := p.sendIn(t, session, "", pngFile(t))
	ev := p.finalReply(t, photoRun)
	if ev.Text != askedForQuestion || ev.Code != "" || len(ev.Choices) == 0 || ev.Choices[0] != "What is in this photo?" {
		t.Fatalf("reply to a photo alone = %+v, want the question with choices", ev)
	}
	if status, reply := p.adminRun(t, photoRun); status != "succeeded" || reply != askedForQuestion {
		t.Fatalf("admin: photo run %s %q", status, reply)
	}
	if by := takenBy(t, db, photoRun); by != "" {
		t.Fatalf("the photo's pending request is taken by %q before any text", by)
	}
	return photoRun
}

func takenBy(t testing.TB, db *sql.DB, runID string) string {
	t.Helper()
	var by string
	if err := db.QueryRow("SELECT taken_by FROM pending WHERE run_id = ?", runID).Scan(&by); err != nil {
		t.Fatalf("pending request of %s: %v", runID, err)
	}
	return by
}

// checkAnsweredOnce checks the completing run's answer was delivered once, the photo run's once, and that the
// photo went into that run and no other.
func checkAnsweredOnce(t *testing.T, db *sql.DB, photoRun, textRun string) {
	t.Helper()
	for _, id := range []string{photoRun, textRun} {
		var replies int
		db.QueryRow("SELECT count(*) FROM steps WHERE run_id = ? AND name = 'reply' AND status = 'done'", id).Scan(&replies)
		if replies != 1 {
			t.Errorf("run %s: %d reply steps done, want exactly 1", id, replies)
		}
	}
	if by := takenBy(t, db, photoRun); by != textRun {
		t.Errorf("the photo's pending request is taken by %q, want the text's run %s", by, textRun)
	}
	var pending int
	db.QueryRow("SELECT count(*) FROM pending").Scan(&pending)
	if pending != 1 {
		t.Errorf("%d pending requests stored, want only the photo's", pending)
	}
}

// wantBoth checks an answer is the one run with the photo and the question.
func wantBoth(t *testing.T, text, question string) {
	t.Helper()
	for _, want := range []string{"PNG image, 20×10 px", "You said: " + question, `Inputs: question="` + question + `", photo=1 file.`} {
		if !strings.Contains(text, want) {
			t.Errorf("answer %q lacks %q", text, want)
		}
	}
}

// TestKilledBetweenPhotoAndTextCompletesAfterRestart is issue 12's crash case: a photo alone waits for its
// question, the bot is killed with SIGKILL, and the text sent to the restarted bot in the same web session still
// completes the request: one Dify run with both, answered once.
func TestKilledBetweenPhotoAndTextCompletesAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	sim := difytest.NewServer(difytest.Options{Shape: "required_text", PingEvery: 50 * time.Millisecond})
	defer sim.Close()
	dataDir := t.TempDir()
	env := map[string]string{"DIFY_BASE_URL": sim.URL(), "DATA_DIR": dataDir}
	db := openDB(t, dataDir)
	session := "session-" + web.NewID()

	a := startServe(t, env)
	photoRun := askPhotoAlone(t, a, db, session)
	if sim.Started() != 0 || sim.Calls(difytest.RouteRun) != 0 {
		t.Fatalf("a photo alone started %d workflow runs (%d POSTs); it must wait for the question", sim.Started(), sim.Calls(difytest.RouteRun))
	}
	a.killHard(t)

	b := startServe(t, env)
	const question = "Is anything damaged?"
	textRun := b.sendIn(t, session, question, nil)
	ev := b.finalReply(t, textRun)
	if ev.Code != "" {
		t.Fatalf("the text after the restart failed: %+v", ev)
	}
	wantBoth(t, ev.Text, question)
	if status, reply := b.adminRun(t, textRun); status != "succeeded" || reply != ev.Text {
		t.Errorf("admin: text run %s %q, want succeeded with the answer", status, reply)
	}
	if sim.Started() != 1 || sim.Calls(difytest.RouteRun) != 1 {
		t.Errorf("workflow runs started %d, POSTs %d; want 1 and 1", sim.Started(), sim.Calls(difytest.RouteRun))
	}
	b.stop(t)
	checkAnsweredOnce(t, db, photoRun, textRun)
}

// TestKilledWhileCompletingRunIsInDify kills the bot with SIGKILL while the run that the text completes is in
// Dify: after the restart that run is waited for, not started again, answered once, and the photo that waited is
// in it (neither lost nor used twice).
func TestKilledWhileCompletingRunIsInDify(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	sim := difytest.NewServer(difytest.Options{Shape: "required_text", Latency: 400 * time.Millisecond, PingEvery: 50 * time.Millisecond})
	defer sim.Close()
	dataDir := t.TempDir()
	env := map[string]string{"DIFY_BASE_URL": sim.URL(), "DATA_DIR": dataDir}
	db := openDB(t, dataDir)
	session := "session-" + web.NewID()

	a := startServe(t, env)
	photoRun := askPhotoAlone(t, a, db, session)
	const question = "Read the text in the photo."
	textRun := a.sendIn(t, session, question, nil)
	// Kill only once the Dify run id is stored: Dify has the run, and the bot must not start another.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var difyRun string
		db.QueryRow("SELECT dify_run_id FROM runs WHERE id = ?", textRun).Scan(&difyRun)
		if difyRun != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the completing run never started in Dify\n%s", a.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if by := takenBy(t, db, photoRun); by != textRun {
		t.Fatalf("the run in Dify has not taken the photo: taken by %q", by)
	}
	a.killHard(t)

	b := startServe(t, env)
	ev := b.finalReply(t, textRun)
	if ev.Code != "" {
		t.Fatalf("the completing run failed after the restart: %+v", ev)
	}
	wantBoth(t, ev.Text, question)
	if sim.Started() != 1 || sim.Calls(difytest.RouteRun) != 1 {
		t.Errorf("workflow runs started %d, POSTs %d; want 1 and 1", sim.Started(), sim.Calls(difytest.RouteRun))
	}
	if sim.Calls(difytest.RouteRunDetail) == 0 {
		t.Error("the restarted bot did not read the run back from Dify")
	}
	b.stop(t)
	checkAnsweredOnce(t, db, photoRun, textRun)
}
