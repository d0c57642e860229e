// Package loadtest is what difyload and difybot's soak and bad-input tests share: the fake Slack and LINE
// APIs of slacktest and linetest with a count of the replies each conversation got, a difytest simulator that
// counts the workflow runs each user started, `difybot serve` as a child process (started, killed, restarted,
// its memory read from /proc), an open-loop sender and latency percentiles.
//
// Every conversation in a run is one message: each message comes from its own Slack DM channel or LINE user,
// so "exactly one final reply per conversation" and "at most one workflow run per Dify user" are what
// "answered once, never run twice" means.
package loadtest
