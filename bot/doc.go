// Package bot is difybot's domain: messages, the pipeline that runs them through Dify, and the diagnosis of what went wrong.
package bot
