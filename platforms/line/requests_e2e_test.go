package line

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/line/linetest"
)

// Issue 12 through the real LINE adapter, bot and store against the simulator's app shapes: a photo (LINE's
// never carry text) and its question, a question and its photo, photos that run at once, an image set of three,
// and two people in one group on a chatflow.

// The simulator's suggested questions (shape required_text), which the bot offers as quick replies.
var suggested = []string{"What is in this photo?", "Is anything damaged?", "Read the text in the photo."}

const (
	askedQuestion = "Got your photo. What would you like to know? Send your question."
	askedPhoto    = "This assistant works on photos. Send a photo, and I'll answer your message about it."
	secondUser    = "U9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a41"
)

var eventSeq atomic.Int64

// said is one message event: a text, or a PNG photo of size×size pixels (the simulator's answer names the
// size). Ids, tokens and the sender are made up when empty.
type said struct {
	user  string
	group string // The group it is sent in; "" for the one-on-one chat.
	text  string
	photo int
	set   *bot.PhotoSet // The photo's place in an image set.
	id    string        // webhookEventId; the message id is derived from it.
}

func (m said) messageID() string { return "5" + strings.TrimPrefix(m.id, "01REQ") }

// event is m as a webhook event, its image content served by the fake.
func (s *system) event(t testing.TB, m *said) map[string]any {
	t.Helper()
	if m.id == "" {
		m.id = fmt.Sprintf("01REQ%021d", eventSeq.Add(1))
	}
	if m.user == "" {
		m.user = userID
	}
	msg := map[string]any{"type": "text", "id": m.messageID(), "quoteToken": "q-" + m.id, "text": m.text}
	if m.photo > 0 {
		s.line.AddContent(m.messageID(), linetest.Content{Body: bottest.PNG(t, m.photo, m.photo)})
		msg = map[string]any{"type": "image", "id": m.messageID(), "quoteToken": "q-" + m.id, "contentProvider": map[string]any{"type": "line"}}
		if m.set != nil {
			msg["imageSet"] = map[string]any{"id": m.set.ID, "index": m.set.Index, "total": m.set.Total}
		}
	}
	source := map[string]any{"type": "user", "userId": m.user}
	if m.group != "" {
		source = map[string]any{"type": "group", "groupId": m.group, "userId": m.user}
	}
	return map[string]any{"type": "message", "mode": "active", "timestamp": time.Now().UnixMilli(), "webhookEventId": m.id,
		"deliveryContext": map[string]any{"isRedelivery": false}, "source": source, "replyToken": "rt-" + m.id, "message": msg}
}

// send delivers the messages in one webhook, as LINE does with events that come together.
func (s *system) send(t testing.TB, ms ...said) []said {
	t.Helper()
	var events []any
	for i := range ms {
		events = append(events, s.event(t, &ms[i]))
	}
	b, _ := json.Marshal(map[string]any{"destination": linetest.BotUserID, "events": events})
	if code := postSigned(t, s.adapter, b); code != http.StatusOK {
		t.Fatalf("webhook status %d", code)
	}
	return ms
}

// settled waits until there are n runs, each finished (or waiting, having asked a workflow's question) with its
// reply delivered, and returns them oldest first.
func (s *system) settled(t testing.TB, n int) []bot.Run {
	t.Helper()
	var runs []bot.Run
	eventually(t, 30*time.Second, fmt.Sprintf("%d runs answered", n), func() bool {
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

// delivered is every message LINE accepted, by reply or push, in the order the calls came.
func (s *system) delivered() []linetest.Call {
	calls := append(s.line.Accepted(linetest.PathReply), s.line.Accepted(linetest.PathPush)...)
	slices.SortStableFunc(calls, func(a, b linetest.Call) int { return a.At.Compare(b.At) })
	return calls
}

// texts is what the delivered messages say, in order, those containing sub only.
func (s *system) texts(sub string) []string {
	var out []string
	for _, c := range s.delivered() {
		for _, m := range c.Messages {
			if strings.Contains(m.Text, sub) {
				out = append(out, m.Text)
			}
		}
	}
	return out
}

// pngSeen is how the simulator describes the PNG photo of that size.
func pngSeen(t testing.TB, size int) string {
	return fmt.Sprintf("Received a PNG image, %d×%d px, %d B.", size, size, len(bottest.PNG(t, size, size)))
}

// A photo comes without text: the bot asks for the question with Dify's suggested questions as quick replies;
// a tapped quick reply (a text message with its text) runs the workflow once with both.
func TestRequestPhotoThenQuestion(t *testing.T) {
	t.Parallel()
	for _, group := range []string{"", groupID} {
		name := "one-on-one"
		if group != "" {
			name = "group"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, e2eOptions{shape: "required_text"})
			photo := s.send(t, said{group: group, photo: 7})[0]
			s.settled(t, 1)

			calls := s.delivered()
			if len(calls) != 1 || calls[0].Path != linetest.PathReply || calls[0].Token != "rt-"+photo.id || len(calls[0].Messages) != 1 {
				t.Fatalf("delivered %+v, want one reply to the photo", calls)
			}
			q := calls[0].Messages[0]
			if q.Text != askedQuestion || q.QuickReply == nil {
				t.Fatalf("question %+v, want %q with quick replies", q, askedQuestion)
			}
			var texts []string
			for _, it := range q.QuickReply.Items {
				texts = append(texts, it.Action.Text)
				if want := clipRunes(it.Action.Text, maxQuickLabel); it.Action.Label != want {
					t.Errorf("quick reply label %q, want %q", it.Action.Label, want)
				}
			}
			if !slices.Equal(texts, suggested) {
				t.Fatalf("quick replies %+v, want the suggested questions %q", q.QuickReply.Items, suggested)
			}
			if (q.QuoteToken != "") != (group != "") {
				t.Errorf("question quotes %q; want a quote in groups only", q.QuoteToken)
			}

			tap := s.send(t, said{group: group, text: q.QuickReply.Items[1].Action.Text})[0]
			s.settled(t, 2)
			want := pngSeen(t, 7) + ` You said: Is anything damaged? Inputs: question="Is anything damaged?", photo=1 file.`
			calls = s.delivered()
			if len(calls) != 2 || calls[1].Token != "rt-"+tap.id || calls[1].Messages[0].Text != want || calls[1].Messages[0].QuickReply != nil {
				t.Errorf("delivered %+v, want the answer %q by the text's reply token", calls, want)
			}
			if n := s.sim.Started(); n != 1 {
				t.Errorf("%d Dify runs, want 1", n)
			}
		})
	}
}

// A text to a photo workflow: the bot asks for a photo (no quick replies); the photo runs it once with both.
func TestRequestQuestionThenPhoto(t *testing.T) {
	t.Parallel()
	s := newSystem(t, e2eOptions{shape: "required_text"})
	s.send(t, said{text: "Is the screen cracked?"})
	s.settled(t, 1)
	if got := s.delivered(); len(got) != 1 || got[0].Messages[0].Text != askedPhoto || got[0].Messages[0].QuickReply != nil {
		t.Fatalf("delivered %+v, want one request for a photo", got)
	}
	s.send(t, said{photo: 5})
	s.settled(t, 2)
	want := pngSeen(t, 5) + ` You said: Is the screen cracked? Inputs: question="Is the screen cracked?", photo=1 file.`
	if got := s.texts("Received"); !slices.Equal(got, []string{want}) {
		t.Errorf("answers %q, want %q", got, want)
	}
	if n := s.sim.Started(); n != 1 {
		t.Errorf("%d Dify runs, want 1", n)
	}
}

// A photo runs at once when the bot has a text for it (IMAGE_PROMPT, the field's default) or none is required.
func TestRequestPhotoRunsAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, shape, prompt, want string
	}{
		{"IMAGE_PROMPT", "required_text", "Describe it in one line.", ` You said: Describe it in one line. Inputs: question="Describe it in one line.", photo=1 file.`},
		{"field default", "text_default", "", ` You said: Describe this photo. Inputs: question="Describe this photo.", photo=1 file.`},
		{"optional text", "optional_text", "", ` Inputs: photo=1 file.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, e2eOptions{shape: tt.shape, config: func(c *bot.Config) { c.ImagePrompt = tt.prompt }})
			s.send(t, said{photo: 3})
			s.settled(t, 1)
			want := pngSeen(t, 3) + tt.want
			if got := s.texts(""); !slices.Equal(got, []string{want}) {
				t.Errorf("delivered %q, want only %q", got, want)
			}
			if n := s.sim.Started(); n != 1 {
				t.Errorf("%d Dify runs, want 1", n)
			}
		})
	}
}

// An image set of three, delivered in one webhook or in three: one run with all three for a file-list input;
// for a single file input (or a chat app), one run per photo, answered in order, each saying which photo it
// covers. Afterwards the person's next text is a request of its own.
func TestRequestImageSetOfThree(t *testing.T) {
	t.Parallel()
	answers := func(t testing.TB, text string) []string {
		var out []string
		for i := 1; i <= 3; i++ {
			out = append(out, fmt.Sprintf("Photo %d of 3\n%s%s", i, pngSeen(t, i), text))
		}
		return out
	}
	tests := []struct {
		name, shape string
		question    string // Asked for, then sent; "" when the set runs at once.
		runs        int
		want        []string
	}{
		{"file list", "file_list", "", 3,
			[]string{pngSeen(t, 1) + " " + pngSeen(t, 2) + " " + pngSeen(t, 3) + " Inputs: photos=3 files."}},
		{"single file", difytest.DefaultShape, "", 5, answers(t, "")},
		{"single file with a required question", "required_text", "Which one is mine?", 6,
			answers(t, ` You said: Which one is mine? Inputs: question="Which one is mine?", photo=1 file.`)},
		{"chatflow", "chatflow_per_user", "", 5, answers(t, " You said: (image). Inputs: files=1 file.")},
	}
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			name := tt.name + "/one webhook"
			if split {
				name = tt.name + "/three webhooks"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := newSystem(t, e2eOptions{shape: tt.shape})
				set := fmt.Sprintf("SET%061d", eventSeq.Add(1))
				var photos []said
				for i := 1; i <= 3; i++ {
					photos = append(photos, said{photo: i, set: &bot.PhotoSet{ID: set, Index: i, Total: 3}})
				}
				if split {
					for _, p := range photos {
						s.send(t, p)
					}
				} else {
					s.send(t, photos...)
				}
				if tt.question != "" {
					s.settled(t, 3)
					asked := s.texts("")
					if want := "Got your 3 photos. What would you like to know? Send your question."; !slices.Equal(asked, []string{want}) {
						t.Fatalf("delivered %q, want only %q", asked, want)
					}
					s.send(t, said{text: tt.question})
				}
				s.settled(t, tt.runs)
				if got := s.texts("Received"); !slices.Equal(got, tt.want) {
					t.Errorf("answers, in order:\n%q\nwant\n%q", got, tt.want)
				}
				if n := s.sim.Started(); n != len(tt.want) {
					t.Errorf("%d Dify runs, want %d", n, len(tt.want))
				}
				if n := len(s.delivered()); n != len(tt.want)+min(len(tt.question), 1) {
					t.Errorf("%d messages delivered (%q), want the answers only", n, s.texts(""))
				}

				// The set is answered: a later text is a request of its own, without the photos.
				s.send(t, said{text: "Thanks!"})
				s.settled(t, tt.runs+1)
				if got := s.texts(""); len(got) == 0 || strings.Contains(got[len(got)-1], "Received a") {
					t.Errorf("after the set, a text was answered %q, want it without the set's photos", got[len(got)-1])
				}
			})
		}
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

// Two people in one group on a chatflow whose conversations belong to the person who started them: each is
// answered in their own Dify conversation, and one that Dify forgot is started again once and answered.
func TestRequestTwoPeopleInOneGroup(t *testing.T) {
	t.Parallel()
	s := newSystem(t, e2eOptions{shape: "chatflow_per_user"})
	ctx := context.Background()
	s.send(t, said{group: groupID, user: userID, text: "What is this place?"})
	s.settled(t, 1)
	s.send(t, said{group: groupID, user: secondUser, text: "And the weather there?"})
	s.settled(t, 2)
	s.send(t, said{group: groupID, user: userID, text: "How old is it?"})
	runs := s.settled(t, 3)

	key := func(user string) string { return "line:" + groupID + "/" + user }
	first, err := s.store.Conversation(ctx, key(userID))
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.store.Conversation(ctx, key(secondUser))
	if err != nil {
		t.Fatal(err)
	}
	if first == "" || second == "" || first == second {
		t.Fatalf("conversations %q and %q, want one each", first, second)
	}
	want := []difytest.ChatRequest{
		{Query: "What is this place?", User: "line-" + userID, ConversationID: ""},
		{Query: "And the weather there?", User: "line-" + secondUser, ConversationID: ""},
		{Query: "How old is it?", User: "line-" + userID, ConversationID: first},
	}
	if got := chatRequests(t, s.sim); !slices.Equal(got, want) {
		t.Errorf("chat requests %+v\nwant %+v", got, want)
	}
	for i, r := range runs {
		if r.Status != bot.RunSucceeded || !strings.Contains(r.Reply, "You said: "+want[i].Query) {
			t.Errorf("run %d: %s %q", i+1, r.Status, r.Reply)
		}
	}

	s.sim.ForgetConversations()
	s.send(t, said{group: groupID, user: secondUser, text: "Still there?"})
	runs = s.settled(t, 4)
	if r := runs[3]; r.Status != bot.RunSucceeded || !strings.Contains(r.Reply, "You said: Still there?") {
		t.Errorf("after Dify forgot: run %s %q (%s), want answered", r.Status, r.Reply, r.Code)
	}
	reqs := chatRequests(t, s.sim)[3:]
	if len(reqs) != 2 || reqs[0].ConversationID != second || reqs[1].ConversationID != "" || reqs[1].User != "line-"+secondUser {
		t.Errorf("requests after Dify forgot %+v, want the old conversation %s once, then a new one", reqs, second)
	}
	if again, _ := s.store.Conversation(ctx, key(secondUser)); again == "" || again == second {
		t.Errorf("conversation after the restart %q, want a new one (was %s)", again, second)
	}
	if got := s.texts("You said:"); len(got) != 4 {
		t.Errorf("answers %q, want 4", got)
	}
}
