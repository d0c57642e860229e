package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/line/linetest"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// RigConfig is one complete setup: simulator, fake platforms and difybot serve.
type RigConfig struct {
	Bin         string            // The difybot binary.
	Dir         string            // Work directory: SQLite data and the serve logs.
	DatabaseURL string            // postgres://… for PostgreSQL; "" for SQLite in Dir.
	Sim         difytest.Options  // The simulator.
	Env         map[string]string // More environment for serve (WORKERS, BREAKER_*, LOG_LEVEL, …).
}

// Rig is a running setup. Each message it makes is its own conversation: a Slack DM channel or a LINE user
// of its own, and so a Dify user of its own.
type Rig struct {
	*Fakes
	Sim   *Sim
	Serve *Serve
	Cfg   RigConfig

	seq atomic.Int64
	tag string // Makes ids unique across rigs sharing a database.
}

// NewRig starts the simulator, the fakes and difybot serve.
func NewRig(ctx context.Context, cfg RigConfig) (*Rig, error) {
	var b [3]byte
	rand.Read(b[:])
	r := &Rig{Cfg: cfg, Sim: NewSim(cfg.Sim), Fakes: NewFakes(), tag: strings.ToUpper(hex.EncodeToString(b[:]))}
	env := r.Env()
	env["DIFY_BASE_URL"], env["DIFY_API_KEY"] = r.Sim.URL(), "app-test"
	env["DATA_DIR"] = filepath.Join(cfg.Dir, "data")
	if cfg.DatabaseURL != "" {
		env["DATABASE_URL"] = cfg.DatabaseURL
	}
	env["TMPDIR"] = filepath.Join(cfg.Dir, "tmp")
	if err := os.MkdirAll(env["TMPDIR"], 0o755); err != nil {
		r.Close()
		return nil, err
	}
	maps.Copy(env, cfg.Env)
	s, err := StartServe(ctx, cfg.Bin, env, filepath.Join(cfg.Dir, "serve.log"))
	if err != nil {
		r.Close()
		return nil, err
	}
	r.Serve = s
	return r, nil
}

// Close kills serve and stops the simulator and the fakes.
func (r *Rig) Close() {
	if r.Serve != nil {
		r.Serve.Kill()
	}
	r.Sim.Close()
	r.Fakes.Close()
}

// Msg is one message to difybot: its conversation, its Dify user, and how to build its delivery.
type Msg struct {
	I        int
	Platform string // "slack" or "line".
	EventID  string
	Conv     string // The conversation key the fake platform counts under.
	DifyUser string // The user the simulator counts runs under.
	body     func(redelivery bool) []byte
	req      func(base string, body []byte, retry int) (*http.Request, error)
}

// Request builds delivery number retry (0 the first) of m to base.
func (m Msg) Request(base string, retry int) (*http.Request, error) {
	return m.req(base, m.body(retry > 0), retry)
}

// Message makes a new message on platform ("slack" or "line"), with text, and with an image when blob is
// not nil (served by the fake platform).
func (r *Rig) Message(platform, text string, blob *Blob) Msg {
	i := int(r.seq.Add(1))
	id := fmt.Sprintf("%s%07d", r.tag, i)
	switch platform {
	case "slack":
		sm := slacktest.DM{EventID: "Ev" + id, Channel: "D" + id, User: "U" + id, Text: text,
			TS: fmt.Sprintf("%d.%06d", time.Now().Unix(), i%1000000)}
		if blob != nil {
			sm.Files = []slacktest.SharedFile{r.AddSlackFile("F"+id, "photo-"+id+".png", *blob)}
		}
		body := sm.Body()
		return Msg{I: i, Platform: platform, EventID: sm.EventID, Conv: sm.Channel, DifyUser: "slack-" + sm.User,
			body: func(bool) []byte { return body },
			req: func(base string, body []byte, retry int) (*http.Request, error) {
				return slacktest.EventsRequest(base, SlackSigningSecret, body, retry)
			}}
	case "line":
		lm := linetest.Message{EventID: "01" + id, UserID: "U" + strings.ToLower(id), ReplyToken: "rt" + id, Text: text,
			Timestamp: time.Now()}
		if blob != nil {
			lm.ImageID = fmt.Sprintf("%d", 500000000000000000+int64(i))
			r.AddLINEContent(lm.ImageID, *blob)
		}
		r.LINE.IssueToken(lm.ReplyToken, lm.UserID)
		return Msg{I: i, Platform: platform, EventID: lm.EventID, Conv: lm.UserID, DifyUser: "line-" + lm.UserID,
			body: func(redelivery bool) []byte {
				m := lm
				m.Redelivery = redelivery
				return m.Body()
			},
			req: func(base string, body []byte, _ int) (*http.Request, error) {
				return linetest.WebhookRequest(base, LINEChannelSecret, body)
			}}
	}
	panic("loadtest: unknown platform " + platform)
}

// Deliver sends m until difybot acknowledges it (2xx) or refuses it for good (4xx), redelivering after a
// failure, a 5xx or no answer within ackTimeout, the way Slack and LINE do, until deadline. It returns the
// number of deliveries and the final status (0 when none was acknowledged).
func (r *Rig) Deliver(ctx context.Context, c *http.Client, m Msg, ackTimeout time.Duration, deadline time.Time) (int, int, error) {
	var last error
	for n := 0; ; n++ {
		if n > 0 {
			wait := time.Duration(min(n, 5)) * 200 * time.Millisecond
			if time.Now().Add(wait).After(deadline) || ctx.Err() != nil {
				return n, 0, fmt.Errorf("not acknowledged after %d deliveries: %w", n, last)
			}
			select {
			case <-ctx.Done():
				return n, 0, ctx.Err()
			case <-time.After(wait):
			}
		}
		req, err := m.Request(r.Serve.URL(), n)
		if err != nil {
			return n, 0, err
		}
		rctx, cancel := context.WithTimeout(ctx, ackTimeout)
		res, err := c.Do(req.WithContext(rctx))
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		cancel()
		switch {
		case err != nil:
			last = err
		case res.StatusCode >= 500:
			last = fmt.Errorf("HTTP %d", res.StatusCode)
		default:
			return n + 1, res.StatusCode, nil
		}
	}
}

// Breaker forces difybot's breaker mode (open, closed, auto) through PUT /admin/breaker, or, where this
// build has no admin API yet, through the store every replica reads it from. It waits until /readyz shows
// the mode (replicas apply it within 5 s).
func (r *Rig) Breaker(ctx context.Context, mode, reason string) (string, error) {
	via := "PUT /admin/breaker"
	body := fmt.Sprintf(`{"mode":%q,"reason":%q}`, mode, reason)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, r.Serve.URL()+"/admin/breaker", bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		via = "the store (no admin API in this build: PUT /admin/breaker answered " + res.Status + ")"
		if err := r.setBreakerInStore(ctx, mode, reason); err != nil {
			return "", err
		}
	}
	want := map[string]string{"open": "forced-open", "closed": "forced-closed"}[mode]
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(r.Serve.URL() + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if want == "" && !strings.Contains(string(b), "forced-") || want != "" && strings.Contains(string(b), want) {
				return via, nil
			}
		}
		if time.Now().After(deadline) {
			return via, errors.New("the breaker mode did not reach /readyz within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *Rig) setBreakerInStore(ctx context.Context, mode, reason string) error {
	now := time.Now().UnixNano()
	const q = `INSERT INTO breaker_settings (id, mode, reason, actor, set_at) VALUES (1, $1, $2, 'difyload', $3)
		ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, reason = excluded.reason, actor = excluded.actor, set_at = excluded.set_at`
	if r.Cfg.DatabaseURL != "" {
		c, err := pgConnect(ctx, r.Cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		_, err = c.Exec(ctx, q, mode, reason, now)
		return err
	}
	db, err := OpenSQLite(filepath.Join(r.Cfg.Dir, "data", "difybot.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, strings.NewReplacer("$1", "?", "$2", "?", "$3", "?").Replace(q), mode, reason, now)
	return err
}

// RedactURL hides a database URL's password for printing.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
