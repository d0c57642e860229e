package loadtest

import (
	"maps"

	"github.com/difybot/difybot/platforms/line/linetest"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// Credentials the harness gives difybot and signs with: the fakes' own. They are test values, never real ones.
const (
	SlackBotToken      = slacktest.BotToken
	SlackSigningSecret = slacktest.SigningSecret
	LINEChannelSecret  = linetest.ChannelSecret
	LINEChannelToken   = linetest.ChannelToken
)

// fakeCalls bounds the call logs of the fakes: the harness counts each call as it is answered and keeps only
// the counts, so a long run stays small.
const fakeCalls = 1000

// Fakes are the fake Slack and LINE (slacktest, linetest) with a count of what every conversation received.
type Fakes struct {
	Slack *slacktest.Server
	LINE  *linetest.Server

	slack, line convs
}

// NewFakes starts both fakes. Close them when done.
func NewFakes() *Fakes {
	f := &Fakes{}
	f.Slack = slacktest.NewServer(slacktest.Options{MaxCalls: fakeCalls, OnCall: f.slack.slackCall})
	f.LINE = linetest.NewServer(linetest.Options{IssuedTokensOnly: true, MaxCalls: fakeCalls, OnCall: f.line.lineCall})
	return f
}

// Close stops both fakes.
func (f *Fakes) Close() {
	f.Slack.Close()
	f.LINE.Close()
}

// Env is the environment that points difybot's Slack and LINE adapters at the fakes.
func (f *Fakes) Env() map[string]string {
	return map[string]string{
		"SLACK_BOT_TOKEN": SlackBotToken, "SLACK_SIGNING_SECRET": SlackSigningSecret, "SLACK_API_URL": f.Slack.URL(),
		// The placeholder and chat.update, which the counts below read; a rig streams with SLACK_STREAMING=auto in
		// RigConfig.Env (difyload -run stream).
		"SLACK_STREAMING":     "off",
		"LINE_CHANNEL_SECRET": LINEChannelSecret, "LINE_CHANNEL_TOKEN": LINEChannelToken,
		"LINE_API_URL": f.LINE.URL(), "LINE_DATA_API_URL": f.LINE.URL(),
	}
}

// AddSlackFile makes a blob downloadable from the fake Slack and returns it as a message attachment. The bot
// downloads it from the fake's host, which is the API host, so it sends its token there.
func (f *Fakes) AddSlackFile(id, name string, b Blob) slacktest.SharedFile {
	return f.Slack.AddFile(id, slacktest.File{Name: name, Mimetype: b.Mimetype(), Size: b.Size, Open: b.Open})
}

// AddLINEContent makes an image message's content downloadable from the fake LINE.
func (f *Fakes) AddLINEContent(messageID string, b Blob) {
	f.LINE.AddContent(messageID, linetest.Content{Type: b.Mimetype(), Size: b.Size, Open: b.Open})
}

// Conversations returns what every conversation on both platforms got, by conversation key (Slack channel or
// LINE chat). For Slack, Finals, Held and Working are what the channel shows now.
func (f *Fakes) Conversations() map[string]Conv {
	out := f.slack.snapshot()
	for k, c := range out {
		c.Finals, c.Working, c.Held = 0, 0, 0
		out[k] = c
	}
	for _, m := range f.Slack.Messages() {
		c := out[m.Channel]
		switch k, _ := Classify(m.Text); {
		case k.Final():
			c.Finals++
		case k == KindHeld:
			c.Held++
		default:
			c.Working++
		}
		out[m.Channel] = c
	}
	maps.Copy(out, f.line.snapshot())
	return out
}
