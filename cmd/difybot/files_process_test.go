package main

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/internal/loadtest"
)

// TestKilledWhileSendingFilesSendsThemOnce is issue 15's crash test: serve is killed with SIGKILL after the
// workflow's files were fetched and stored, while Slack is sharing them in the thread, and started again on the
// same data. Whether Slack had shared them before the crash or not, each file ends up in the thread exactly
// once, and no file is fetched from Dify again (its link would have expired by then).
func TestKilledWhileSendingFilesSendsThemOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	for _, tt := range []struct {
		name    string
		applied bool // Slack shared the files before the crash, but its answer never arrived.
	}{
		{"before Slack shared them", false},
		{"after Slack shared them, before it answered", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rig, err := loadtest.NewRig(t.Context(), loadtest.RigConfig{Bin: binary(t), Dir: t.TempDir(),
				Sim: difytest.Options{Scenario: "file_list_output", PingEvery: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			defer rig.Close()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("serve logs (tail):\n%s", rig.Serve.Tail(8000))
				}
			})
			const complete = "files.completeUploadExternal"
			called := make(chan struct{}, 4)
			if tt.applied {
				release := rig.Slack.HoldAnswer(complete)
				defer release()
			} else {
				block := make(chan struct{})
				defer close(block)
				rig.Slack.FailWith(complete, func(w http.ResponseWriter) bool { <-block; return true })
			}
			go func() { // Tell the test when the completion is in flight; ends with the test.
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-t.Context().Done():
						return
					case <-tick.C:
					}
					if len(rig.Slack.CallsTo(complete)) > 0 {
						called <- struct{}{}
						return
					}
				}
			}()
			m := rig.Message("slack", "what is in the chart?", nil)
			if _, status, err := rig.Deliver(t.Context(), http.DefaultClient, m, 5*time.Second, time.Now().Add(20*time.Second)); err != nil || status != 200 {
				t.Fatalf("deliver: %d %v", status, err)
			}
			select {
			case <-called:
			case <-time.After(30 * time.Second):
				t.Fatal("the files were never shared")
			}
			if err := rig.Serve.Kill(); err != nil {
				t.Fatal(err)
			}
			fetched := rig.Sim.Calls(difytest.RouteFile)
			rig.Slack.FailWith(complete, nil)
			if err := rig.Serve.Restart(t.Context()); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				ups := rig.Slack.Uploads()
				if len(ups) == 2 && len(ups[0].Shares) > 0 && len(ups[1].Shares) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("uploads after the restart: %+v", ups)
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond) // Room for a second share, were one coming.
			if n := rig.Sim.Calls(difytest.RouteFile); n != 2 || fetched != 2 {
				t.Errorf("files fetched from Dify %d times before the crash and %d in all, want 2 and 2", fetched, n)
			}
			ups := rig.Slack.Uploads()
			if len(ups) != 2 {
				t.Fatalf("%d uploads, want 2 (nothing uploaded again)", len(ups))
			}
			for _, up := range ups {
				if len(up.Shares) != 1 || up.Shares[0].Channel != m.Conv {
					t.Errorf("%s shared %+v, want once in %s", up.Name, up.Shares, m.Conv)
				}
				if !bytes.Equal(up.Body, rig.Sim.File(up.Name)) {
					t.Errorf("%s: the bytes uploaded are not what Dify served", up.Name)
				}
			}
		})
	}
}
