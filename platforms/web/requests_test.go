package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/web"
)

// Issue 12 through the web chat, the real bot and store against the simulator's app shapes: a photo and then
// its question (a tapped chip), a question and then its photo, and photos that run at once.

// The simulator's suggested questions (shape required_text), which the chat shows as chips.
var suggested = []string{"What is in this photo?", "Is anything damaged?", "Read the text in the photo."}

const (
	askedQuestion = "Got your photo. What would you like to know? Send your question."
	askedPhoto    = "This assistant works on photos. Send a photo, and I'll answer your message about it."
)

func shape(name string) func(*difytest.Options, *bot.Config) {
	return func(o *difytest.Options, _ *bot.Config) { o.Shape = name }
}

// pngSeen is how the simulator describes the PNG photo of that size.
func pngSeen(t testing.TB, size int) string {
	return fmt.Sprintf("Received a PNG image, %d×%d px, %d B.", size, size, len(bottest.PNG(t, size, size)))
}

// say posts a message of the session, text and an optional PNG photo of size×size, and returns its run's final
// reply.
func say(t testing.TB, srv *httptest.Server, session, text string, photo int) web.Event {
	t.Helper()
	var img []byte
	if photo > 0 {
		img = bottest.PNG(t, photo, photo)
	}
	status, out := post(t, srv, "", map[string]string{"id": web.NewID(), "session": session, "text": text}, img)
	if status != http.StatusAccepted {
		t.Fatalf("post: %d %v", status, out)
	}
	evs := follow(t, srv, "", out["run_id"].(string))
	if len(evs) == 0 || evs[len(evs)-1].Type != "reply" || !evs[len(evs)-1].Final {
		t.Fatalf("events %+v, want a final reply", evs)
	}
	return evs[len(evs)-1]
}

// A photo without the question the workflow requires is answered with the question and Dify's suggested
// questions as chips; the tapped chip (sent as the next message) runs the workflow once with both.
func TestRequestPhotoThenQuestion(t *testing.T) {
	t.Parallel()
	srv, sim := newChat(t, "", shape("required_text"))
	asked := say(t, srv, "session-photo", "", 7)
	if asked.Text != askedQuestion || !slices.Equal(asked.Choices, suggested) || asked.Code != "" {
		t.Fatalf("reply %+v, want %q with the suggested questions as choices", asked, askedQuestion)
	}
	if n := sim.Started(); n != 0 {
		t.Fatalf("%d Dify runs before the question, want none", n)
	}
	answer := say(t, srv, "session-photo", asked.Choices[1], 0)
	want := pngSeen(t, 7) + ` You said: Is anything damaged? Inputs: question="Is anything damaged?", photo=1 file.`
	if answer.Text != want || answer.Code != "" || len(answer.Choices) != 0 {
		t.Errorf("answer %+v\nwant %q", answer, want)
	}
	if n := sim.Started(); n != 1 {
		t.Errorf("%d Dify runs, want 1", n)
	}
}

// A text without the photo the workflow requires is answered by asking for one; the photo runs it once with both.
func TestRequestQuestionThenPhoto(t *testing.T) {
	t.Parallel()
	srv, sim := newChat(t, "", shape("required_text"))
	asked := say(t, srv, "session-text", "Is the screen cracked?", 0)
	if asked.Text != askedPhoto || len(asked.Choices) != 0 {
		t.Fatalf("reply %+v, want %q without choices", asked, askedPhoto)
	}
	answer := say(t, srv, "session-text", "", 5)
	want := pngSeen(t, 5) + ` You said: Is the screen cracked? Inputs: question="Is the screen cracked?", photo=1 file.`
	if answer.Text != want || answer.Code != "" {
		t.Errorf("answer %+v\nwant %q", answer, want)
	}
	if n := sim.Started(); n != 1 {
		t.Errorf("%d Dify runs, want 1", n)
	}
}

// A photo alone runs at once when the bot has a text for it (IMAGE_PROMPT, the field's default) or the workflow
// does not require one.
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
			srv, sim := newChat(t, "", func(o *difytest.Options, c *bot.Config) { o.Shape, c.ImagePrompt = tt.shape, tt.prompt })
			answer := say(t, srv, "session-once", "", 3)
			if want := pngSeen(t, 3) + tt.want; answer.Text != want || answer.Code != "" {
				t.Errorf("answer %+v\nwant %q", answer, want)
			}
			if n := sim.Started(); n != 1 {
				t.Errorf("%d Dify runs, want 1", n)
			}
		})
	}
}
