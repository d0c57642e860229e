package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify/difytest"
	slackadapter "github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// Issue 12 through the real Slack adapter, bot and store against the simulator's app shapes: a request spread
// over two messages (a photo, then its question typed or tapped; a question, then its photo), photos that run at
// once, several photos in one message, and two people in one thread of a chatflow.

// bob is a second person in the channel.
const bob = "U03BOBB0B42"

// The simulator's suggested questions (shape required_text), which the bot offers as buttons.
var suggested = []string{"What is in this photo?", "Is anything damaged?", "Read the text in the photo."}

// place is where a person writes to the bot.
type place string

const (
	inDM      place = "dm"      // A direct message: every message is top-level, the DM is one conversation.
	inChannel place = "channel" // A channel: the first message mentions the bot, the rest reply in its thread.
)

// eventSeq makes event ids, timestamps and action_ts unique across the tests.
var eventSeq atomic.Int64

// said is one message a person sends; id and ts are made up when empty.
type said struct {
	where  place
	user   string
	thread string // The thread it replies in; "" for a top-level message (in a channel, a mention).
	text   string
	files  []slacktest.SharedFile
	id, ts string
	ch     string // The channel, when not the usual one of its place.
}

// send delivers m as Slack does and returns it with its ids filled in.
func (s *system) send(t testing.TB, m said) said {
	t.Helper()
	n := eventSeq.Add(1)
	if m.id == "" {
		m.id = fmt.Sprintf("Ev0REQ%06d", n)
	}
	if m.ts == "" {
		m.ts = fmt.Sprintf("1763810000.%06d", n)
	}
	if m.user == "" {
		m.user = person
	}
	ch := dmChannel
	if m.where == inChannel {
		ch = channel
	}
	if m.ch != "" {
		ch = m.ch
	}
	body := slacktest.DM{EventID: m.id, Channel: ch, User: m.user, Text: m.text, TS: m.ts, Files: m.files}.Body()
	body = edited(t, body, func(p map[string]any) {
		ev := p["event"].(map[string]any)
		if m.thread != "" {
			ev["thread_ts"] = m.thread
		}
		if m.where != inChannel {
			return
		}
		ev["channel_type"] = "channel"
		if m.thread == "" {
			ev["type"], ev["text"] = "app_mention", strings.TrimSpace("<@"+botUser+"> "+m.text)
			delete(ev, "subtype")
			delete(ev, "channel_type")
		}
	})
	s.deliver(t, body, 0)
	return m
}

// replyThread is the thread the bot answers m in.
func (m said) replyThread() string {
	if m.thread != "" {
		return m.thread
	}
	return m.ts
}

// photo makes a PNG of size×size pixels downloadable as file id: the simulator's answer names its size.
func (s *system) photo(t testing.TB, id string, size int) slacktest.SharedFile {
	t.Helper()
	return s.slack.AddFile(id, slacktest.File{Name: strings.ToLower(id) + ".png", Mimetype: "image/png", Body: bottest.PNG(t, size, size)})
}

// pngSeen is how the simulator describes the PNG photo of that size.
func pngSeen(t testing.TB, size int) string {
	return fmt.Sprintf("Received a PNG image, %d×%d px, %d B.", size, size, len(bottest.PNG(t, size, size)))
}

// settled waits until there are n runs, each finished (or waiting, having asked a workflow's question) with its
// reply delivered, and returns them oldest first.
func (s *system) settled(t testing.TB, n int) []bot.Run {
	t.Helper()
	var runs []bot.Run
	eventually(t, e2eWait, fmt.Sprintf("%d runs answered", n), func() bool {
		var err error
		runs, err = s.store.ListRuns(context.Background(), bot.RunFilter{Limit: 500})
		if err != nil || len(runs) != n {
			return false
		}
		for _, r := range runs {
			if (r.Status != bot.RunSucceeded && r.Status != bot.RunFailed && r.Status != bot.RunWaiting) || r.RepliedAttempt != r.Attempt {
				return false
			}
		}
		return true
	})
	slices.Reverse(runs)
	return runs
}

// posted returns the chat.postMessage calls whose text contains sub.
// posted returns the bot's messages whose text contains sub: posted as they are, or the fast lane's placeholder
// edited into them. Each is given as a chat.postMessage would show it, with its ts and thread.
func (s *system) posted(sub string) []slacktest.Call {
	var out []slacktest.Call
	for _, c := range s.slack.CallsTo("chat.postMessage") {
		if strings.Contains(c.Form.Get("text"), sub) {
			out = append(out, c)
		}
	}
	for _, c := range s.slack.CallsTo("chat.update") {
		if !strings.Contains(c.Form.Get("text"), sub) {
			continue
		}
		c.TS = c.Form.Get("ts")
		c.Form = maps.Clone(c.Form)
		for _, m := range s.slack.Messages() {
			if m.TS == c.TS {
				c.Form.Set("thread_ts", m.ThreadTS)
			}
		}
		out = append(out, c)
	}
	return out
}

// answers returns the answers the threads show now: the messages that echo what the simulator received.
func (s *system) answers() []slacktest.Message {
	var out []slacktest.Message
	for _, m := range s.slack.Messages() {
		if strings.Contains(m.Text, "Received a") || strings.Contains(m.Text, "No image was attached") {
			out = append(out, m)
		}
	}
	return out
}

// button is a choice button as a reply's blocks render it.
type button struct {
	ActionID, Value, Label string
}

// buttons reads the choice buttons of a blocks form field.
func buttons(t testing.TB, blocks string) []button {
	t.Helper()
	if blocks == "" {
		return nil
	}
	var bs []struct {
		Type     string `json:"type"`
		Elements []struct {
			Type     string `json:"type"`
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
			Text     struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"elements"`
	}
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		t.Fatalf("blocks %s: %v", blocks, err)
	}
	var out []button
	for _, b := range bs {
		for _, e := range b.Elements {
			if b.Type == "actions" && e.Type == "button" && strings.HasPrefix(e.ActionID, slackadapter.ChoiceActionID) {
				out = append(out, button{e.ActionID, e.Value, e.Text.Text})
			}
		}
	}
	return out
}

// tap is the block_actions interaction Slack sends when user taps b on the bot's message q (a chat.postMessage).
func (s *system) tap(t testing.TB, user string, q slacktest.Call, b button) {
	t.Helper()
	ch, thread := q.Form.Get("channel"), q.Form.Get("thread_ts")
	var blocks any
	if err := json.Unmarshal([]byte(q.Form.Get("blocks")), &blocks); err != nil {
		t.Fatal(err)
	}
	body := edited(t, payload(t, "block_actions.json", nil), func(p map[string]any) {
		p["user"].(map[string]any)["id"] = user
		p["container"] = map[string]any{"type": "message", "message_ts": q.TS, "channel_id": ch, "is_ephemeral": false, "thread_ts": thread}
		p["channel"] = map[string]any{"id": ch, "name": "somewhere"}
		msg := p["message"].(map[string]any)
		msg["ts"], msg["thread_ts"], msg["text"], msg["blocks"] = q.TS, thread, q.Form.Get("text"), blocks
		p["actions"] = []any{map[string]any{"action_id": b.ActionID, "block_id": slackadapter.ChoiceActionID, "type": "button",
			"text": map[string]any{"type": "plain_text", "text": b.Label, "emoji": true}, "value": b.Value,
			"action_ts": fmt.Sprintf("1763820000.%06d", eventSeq.Add(1))}}
	})
	if w := serve(s.inter, interactionRequest(body)); w.Code != http.StatusOK {
		t.Fatalf("interaction answered %d, want 200", w.Code)
	}
}

const (
	askedQuestion = "Got your photo. What would you like to know? Send your question."
	askedPhoto    = "This assistant works on photos. Send a photo, and I'll answer your message about it."
)

// A photo without the question the workflow requires is answered with the question and Dify's suggested
// questions as buttons; the person's next message, typed or a tapped button, runs the workflow once with both.
func TestRequestPhotoThenQuestion(t *testing.T) {
	t.Parallel()
	for _, where := range []place{inDM, inChannel} {
		for _, tapped := range []bool{false, true} {
			name := string(where) + "/typed"
			if tapped {
				name = string(where) + "/tapped"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := newSystem(t, difytest.Options{Shape: "required_text"})
				photo := s.send(t, said{where: where, files: []slacktest.SharedFile{s.photo(t, "F0REQ00001", 7)}})
				s.settled(t, 1)

				asked := s.posted(askedQuestion)
				if len(asked) != 1 {
					t.Fatalf("questions posted: %+v, want one", asked)
				}
				q := asked[0]
				if q.Form.Get("thread_ts") != photo.replyThread() {
					t.Errorf("question in thread %q, want the photo's %q", q.Form.Get("thread_ts"), photo.replyThread())
				}
				bs := buttons(t, q.Form.Get("blocks"))
				var values []string
				for _, b := range bs {
					values = append(values, b.Value)
					if b.Label != b.Value {
						t.Errorf("button %+v: label and value differ", b)
					}
				}
				if !slices.Equal(values, suggested) {
					t.Fatalf("buttons %+v, want the suggested questions %q", bs, suggested)
				}
				if n := s.sim.Started(); n != 0 {
					t.Fatalf("%d Dify runs before the question, want none", n)
				}

				question := "What brand is it?"
				if tapped {
					question = bs[1].Value
					s.tap(t, person, q, bs[1])
				} else {
					next := said{where: where, text: question}
					if where == inChannel {
						next.thread = photo.ts
					}
					s.send(t, next)
				}
				runs := s.settled(t, 2)

				answer := s.updateContaining(t, "Inputs:")
				want := fmt.Sprintf(`%s You said: %s Inputs: question="%s", photo=1 file.`, pngSeen(t, 7), question, question)
				if got := answer.Form.Get("text"); got != want {
					t.Errorf("answer %q\nwant   %q", got, want)
				}
				if answer.Form.Get("channel") != q.Form.Get("channel") {
					t.Errorf("answered in %s, want %s", answer.Form.Get("channel"), q.Form.Get("channel"))
				}
				if where == inChannel && !slices.ContainsFunc(s.slack.Messages(), func(m slacktest.Message) bool {
					return m.TS == answer.Form.Get("ts") && m.ThreadTS == photo.ts
				}) {
					t.Errorf("the answer is not in the photo's thread %s: %+v", photo.ts, s.slack.Messages())
				}
				if n, a := s.sim.Started(), s.answers(); n != 1 || len(a) != 1 {
					t.Errorf("%d Dify runs and answers %+v, want one of each", n, a)
				}
				if runs[0].Reply != askedQuestion || runs[1].Status != bot.RunSucceeded {
					t.Errorf("runs %q (%s), %q (%s)", runs[0].Reply, runs[0].Status, runs[1].Reply, runs[1].Status)
				}
				if tapped {
					if runs[1].Message.Text != question || runs[1].Message.UserID != person {
						t.Errorf("the tap became %+v, want the person's message %q", runs[1].Message, question)
					}
					var shown bool
					for _, u := range s.slack.CallsTo("chat.update") {
						shown = shown || u.Form.Get("ts") == q.TS && u.Form.Get("blocks") == "[]" && strings.HasSuffix(u.Form.Get("text"), "> "+question)
					}
					if !shown {
						t.Errorf("the question was not edited to show the choice without its buttons: %+v", s.slack.CallsTo("chat.update"))
					}
				}
			})
		}
	}
}

// A text without the photo the workflow requires is answered by asking for one; the photo runs it once with both.
func TestRequestQuestionThenPhoto(t *testing.T) {
	t.Parallel()
	for _, where := range []place{inDM, inChannel} {
		t.Run(string(where), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, difytest.Options{Shape: "required_text"})
			text := s.send(t, said{where: where, text: "Is the screen cracked?"})
			s.settled(t, 1)
			asked := s.posted(askedPhoto)
			if len(asked) != 1 || asked[0].Form.Get("thread_ts") != text.ts || len(buttons(t, asked[0].Form.Get("blocks"))) != 0 {
				t.Fatalf("posts %+v, want one request for a photo in thread %s, without buttons", s.slack.CallsTo("chat.postMessage"), text.ts)
			}

			next := said{where: where, files: []slacktest.SharedFile{s.photo(t, "F0REQ00002", 5)}}
			if where == inChannel {
				next.thread = text.ts
			}
			s.send(t, next)
			s.settled(t, 2)
			answer := s.updateContaining(t, "Inputs:")
			want := pngSeen(t, 5) + ` You said: Is the screen cracked? Inputs: question="Is the screen cracked?", photo=1 file.`
			if got := answer.Form.Get("text"); got != want {
				t.Errorf("answer %q\nwant   %q", got, want)
			}
			if n, a := s.sim.Started(), s.answers(); n != 1 || len(a) != 1 {
				t.Errorf("%d Dify runs and answers %+v, want one of each", n, a)
			}
		})
	}
}

// A photo alone runs at once when the bot has a text for it (IMAGE_PROMPT, the field's default) or the workflow
// does not require one.
func TestRequestPhotoRunsAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, shape, prompt, want string
	}{
		{"IMAGE_PROMPT", "required_text", "Describe it in one line.", `You said: Describe it in one line. Inputs: question="Describe it in one line.", photo=1 file.`},
		{"field default", "text_default", "", `You said: Describe this photo. Inputs: question="Describe this photo.", photo=1 file.`},
		{"optional text", "optional_text", "", pngSeen(t, 3) + ` Inputs: photo=1 file.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, difytest.Options{Shape: tt.shape}, func(c *bot.Config) { c.ImagePrompt = tt.prompt })
			s.send(t, said{where: inDM, files: []slacktest.SharedFile{s.photo(t, "F0REQ00003", 3)}})
			runs := s.settled(t, 1)
			answer := s.updateContaining(t, "Inputs:")
			if got := answer.Form.Get("text"); !strings.HasSuffix(got, tt.want) {
				t.Errorf("answer %q, want it to end %q", got, tt.want)
			}
			if len(s.posted(askedQuestion)) != 0 || s.sim.Started() != 1 || runs[0].Status != bot.RunSucceeded {
				t.Errorf("asked %d times, %d Dify runs, run %s; want one run at once", len(s.posted(askedQuestion)), s.sim.Started(), runs[0].Status)
			}
		})
	}
}

// Three photos in one message: one run with all three for a file-list input; for a single file input, one run
// per photo, answered in order, each saying which photo it covers.
func TestRequestThreePhotosInOneMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, shape, text string
		want              []string // The answers, in order.
	}{
		{"file list", "file_list", "Which is sharpest?", []string{
			pngSeen(t, 1) + " " + pngSeen(t, 2) + " " + pngSeen(t, 3) + ` You said: Which is sharpest? Inputs: photos=3 files, question="Which is sharpest?".`}},
		{"single file with a text", "required_text", "What is this?", []string{
			"Photo 1 of 3\n" + pngSeen(t, 1) + ` You said: What is this? Inputs: question="What is this?", photo=1 file.`,
			"Photo 2 of 3\n" + pngSeen(t, 2) + ` You said: What is this? Inputs: question="What is this?", photo=1 file.`,
			"Photo 3 of 3\n" + pngSeen(t, 3) + ` You said: What is this? Inputs: question="What is this?", photo=1 file.`}},
		{"single file, default shape", difytest.DefaultShape, "", []string{
			"Photo 1 of 3\n" + pngSeen(t, 1),
			"Photo 2 of 3\n" + pngSeen(t, 2),
			"Photo 3 of 3\n" + pngSeen(t, 3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, difytest.Options{Shape: tt.shape})
			var files []slacktest.SharedFile
			for i := 1; i <= 3; i++ {
				files = append(files, s.photo(t, fmt.Sprintf("F0REQ1000%d", i), i))
			}
			m := s.send(t, said{where: inDM, text: tt.text, files: files})
			s.settled(t, len(tt.want))
			if n := s.sim.Started(); n != len(tt.want) {
				t.Errorf("%d Dify runs, want %d", n, len(tt.want))
			}
			var got []string
			for _, u := range s.slack.CallsTo("chat.update") {
				if text := u.Form.Get("text"); strings.Contains(text, "Received") {
					got = append(got, text)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("answers, in the order written:\n%q\nwant\n%q", got, tt.want)
			}
			for _, a := range s.answers() {
				if a.ThreadTS != m.ts {
					t.Errorf("answer %q in thread %s, want the message's %s", a.Text, a.ThreadTS, m.ts)
				}
			}
			if len(s.posted(askedQuestion)) != 0 {
				t.Error("the bot asked for a question it had")
			}
		})
	}
}

// chatRequests is what the simulator received on /v1/chat-messages.
func chatRequests(t testing.TB, sim interface {
	ChatRequests() ([]difytest.ChatRequest, error)
}) []difytest.ChatRequest {
	t.Helper()
	out, err := sim.ChatRequests()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Two people in one thread of a chatflow whose conversations belong to the person who started them: each is
// answered in their own Dify conversation, and one that Dify forgot is started again once and answered.
func TestRequestTwoPeopleInOneThread(t *testing.T) {
	t.Parallel()
	s := newSystem(t, difytest.Options{Shape: "chatflow_per_user"})
	ctx := context.Background()
	first := s.send(t, said{where: inChannel, user: person, text: "What is this place?"})
	s.settled(t, 1)
	s.send(t, said{where: inChannel, user: bob, thread: first.ts, text: "And the weather there?"})
	s.settled(t, 2)
	s.send(t, said{where: inChannel, user: person, thread: first.ts, text: "How old is it?"})
	runs := s.settled(t, 3)

	key := func(user string) string { return "slack:" + channel + ":" + first.ts + "/" + user }
	alice, err := s.store.Conversation(ctx, key(person))
	if err != nil {
		t.Fatal(err)
	}
	bobs, err := s.store.Conversation(ctx, key(bob))
	if err != nil {
		t.Fatal(err)
	}
	if alice == "" || bobs == "" || alice == bobs {
		t.Fatalf("conversations %q and %q, want one each", alice, bobs)
	}
	reqs := chatRequests(t, s.sim)
	want := []difytest.ChatRequest{
		{Query: "What is this place?", User: "slack-" + person, ConversationID: ""},
		{Query: "And the weather there?", User: "slack-" + bob, ConversationID: ""},
		{Query: "How old is it?", User: "slack-" + person, ConversationID: alice},
	}
	if !slices.Equal(reqs, want) {
		t.Errorf("chat requests %+v\nwant %+v", reqs, want)
	}
	for i, r := range runs {
		if r.Status != bot.RunSucceeded || !strings.Contains(r.Reply, "You said: "+want[i].Query) {
			t.Errorf("run %d: %s %q", i+1, r.Status, r.Reply)
		}
	}

	s.sim.ForgetConversations()
	s.send(t, said{where: inChannel, user: bob, thread: first.ts, text: "Still there?"})
	runs = s.settled(t, 4)
	if r := runs[3]; r.Status != bot.RunSucceeded || !strings.Contains(r.Reply, "You said: Still there?") {
		t.Errorf("after Dify forgot: run %s %q (%s), want answered", r.Status, r.Reply, r.Code)
	}
	reqs = chatRequests(t, s.sim)[3:]
	if len(reqs) != 2 || reqs[0].ConversationID != bobs || reqs[1].ConversationID != "" || reqs[1].User != "slack-"+bob {
		t.Errorf("requests after Dify forgot %+v, want the old conversation %s once, then a new one", reqs, bobs)
	}
	again, _ := s.store.Conversation(ctx, key(bob))
	if again == "" || again == bobs {
		t.Errorf("conversation after the restart %q, want a new one (was %s)", again, bobs)
	}
	if n := len(s.answers()); n != 4 {
		t.Errorf("%d answers in the thread, want 4: %+v", n, s.slack.Messages())
	}
}
