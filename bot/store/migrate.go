package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// migrations are our schema changes, applied in order once each and recorded in difybot_migrations.
// Never edit one that has shipped: add the next. The SQL is shared by both dialects; {{id}} (an auto-increment
// key) and {{blob}} (a column of bytes) are the spellings that differ.
var migrations = [][]string{
	1: {
		`CREATE TABLE runs (
			id              TEXT PRIMARY KEY,
			platform        TEXT NOT NULL,
			event_id        TEXT, -- NULL when the platform gave none: such runs are never deduplicated.
			status          TEXT NOT NULL,
			message         TEXT NOT NULL, -- bot.Message as JSON.
			created_at      BIGINT NOT NULL, -- Times are Unix nanoseconds (UTC); 0 is unset.
			updated_at      BIGINT NOT NULL,
			finished_at     BIGINT NOT NULL DEFAULT 0,
			attempt         INTEGER NOT NULL DEFAULT 1,
			dify_run_id     TEXT NOT NULL DEFAULT '',
			dify_task_id    TEXT NOT NULL DEFAULT '',
			conversation_id TEXT NOT NULL DEFAULT '',
			reply           TEXT NOT NULL DEFAULT '',
			code            TEXT NOT NULL DEFAULT '',
			diagnosis       TEXT NOT NULL DEFAULT '', -- bot.Diagnosis as JSON, '' when none.
			held_notified   INTEGER NOT NULL DEFAULT 0,
			state           TEXT NOT NULL DEFAULT '', -- Adapter reply state as a JSON object.
			UNIQUE (platform, event_id)
		)`,
		`CREATE INDEX runs_created ON runs (created_at DESC, id DESC)`,
		`CREATE INDEX runs_status_created ON runs (status, created_at DESC)`,
		`CREATE INDEX runs_platform_created ON runs (platform, created_at DESC)`,
		`CREATE INDEX runs_code_created ON runs (code, created_at DESC)`,
		`CREATE TABLE steps (
			seq         {{id}},
			run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
			attempt     INTEGER NOT NULL,
			n           INTEGER NOT NULL,
			total       INTEGER NOT NULL, -- Step.Of.
			name        TEXT NOT NULL,
			status      TEXT NOT NULL,
			started_at  BIGINT NOT NULL,
			duration_ns BIGINT NOT NULL,
			code        TEXT NOT NULL DEFAULT '',
			error       TEXT NOT NULL DEFAULT '',
			fields      TEXT NOT NULL DEFAULT '' -- JSON object, '' when none.
		)`,
		`CREATE INDEX steps_run ON steps (run_id, seq)`,
		`CREATE TABLE node_events (
			id          {{id}},
			run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
			seq         INTEGER NOT NULL,
			event       TEXT NOT NULL,
			node_id     TEXT NOT NULL,
			node_type   TEXT NOT NULL,
			title       TEXT NOT NULL,
			node_index  INTEGER NOT NULL,
			status      TEXT NOT NULL DEFAULT '',
			elapsed_s   DOUBLE PRECISION NOT NULL DEFAULT 0,
			error       TEXT NOT NULL DEFAULT '',
			happened_at BIGINT NOT NULL
		)`,
		`CREATE INDEX node_events_run ON node_events (run_id, id)`,
		`CREATE TABLE breaker_settings (
			id     INTEGER PRIMARY KEY CHECK (id = 1), -- One row: the override in force.
			mode   TEXT NOT NULL,
			reason TEXT NOT NULL,
			actor  TEXT NOT NULL,
			set_at BIGINT NOT NULL
		)`,
		`CREATE TABLE breaker_audit (
			id     {{id}},
			mode   TEXT NOT NULL,
			reason TEXT NOT NULL,
			actor  TEXT NOT NULL,
			set_at BIGINT NOT NULL
		)`,
		`CREATE TABLE conversations (
			key             TEXT PRIMARY KEY,
			conversation_id TEXT NOT NULL,
			updated_at      BIGINT NOT NULL
		)`,
	},
	2: {
		// The pipeline's own delivery facts, which lived in the adapters' state as posted:N and replied:N.
		`ALTER TABLE runs ADD COLUMN posted_attempt INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE runs ADD COLUMN replied_attempt INTEGER NOT NULL DEFAULT 0`,
	},
	3: {
		// Messages waiting for the rest of their request: a photo for its question, a text for its photo.
		`CREATE TABLE pending (
			run_id     TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
			key        TEXT NOT NULL, -- bot.Message.ConversationKey(): the conversation and the person.
			message    TEXT NOT NULL, -- bot.Message as JSON.
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL,
			taken_by   TEXT NOT NULL DEFAULT '' -- The run that completed it, 'expired', or '' while it waits.
		)`,
		`CREATE INDEX pending_waiting ON pending (key, taken_by, expires_at)`,
		`CREATE INDEX pending_taken ON pending (taken_by)`,
		`ALTER TABLE runs ADD COLUMN batch TEXT NOT NULL DEFAULT ''`,   // bot.Run.Batch as JSON, '' when none.
		`ALTER TABLE runs ADD COLUMN choices TEXT NOT NULL DEFAULT ''`, // bot.Run.Choices as JSON, '' when none.
	},
	4: {
		// Threads the bot takes part in, so every replica runs the workflow for their replies.
		`CREATE TABLE threads (
			key       TEXT PRIMARY KEY, -- The platform's name, chat and thread, as the adapter names them.
			joined_at BIGINT NOT NULL
		)`,
	},
	5: {
		// A chat app's message id, announced by its stream, so a dropped stream or a crash reads the answer back.
		`ALTER TABLE runs ADD COLUMN dify_message_id TEXT NOT NULL DEFAULT ''`,
		// Whose message a run is (platform:user), for one person's fair share of Dify.
		`ALTER TABLE runs ADD COLUMN person TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX runs_person ON runs (person, created_at)`,
		// The attempt whose first feedback (placeholder, loading animation) someone took on: the fast lane right
		// after the ack, or the worker when the fast lane did not.
		`ALTER TABLE runs ADD COLUMN feedback_attempt INTEGER NOT NULL DEFAULT 0`,
		// Replicas and when each last said it is alive (the database's clock), so the others can take over
		// the runs of one that died instead of waiting for River's rescuer.
		`CREATE TABLE replicas (
			id         TEXT PRIMARY KEY, -- River's client id.
			started_at BIGINT NOT NULL,
			seen_at    BIGINT NOT NULL
		)`,
	},
	6: {
		// Files of Dify's answers, kept so that any replica can serve them at /files/{id} until they expire.
		`CREATE TABLE output_files (
			id           TEXT PRIMARY KEY,
			run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
			attempt      INTEGER NOT NULL,
			seq          INTEGER NOT NULL, -- The file's place in the answer.
			file_key     TEXT NOT NULL, -- Dify's identity of the file within the run.
			name         TEXT NOT NULL,
			mime_type    TEXT NOT NULL,
			size         BIGINT NOT NULL,
			data         {{blob}} NOT NULL,
			preview      {{blob}}, -- A smaller JPEG for LINE's image preview; NULL when the file is its own.
			preview_size BIGINT NOT NULL DEFAULT 0,
			created_at   BIGINT NOT NULL,
			expires_at   BIGINT NOT NULL,
			UNIQUE (run_id, attempt, file_key)
		)`,
		`CREATE INDEX output_files_expires ON output_files (expires_at)`,
		// Keys made at the first start and shared by every replica: 'files' signs the /files links.
		`CREATE TABLE signing_keys (
			name       TEXT PRIMARY KEY,
			secret     {{blob}} NOT NULL,
			created_at BIGINT NOT NULL
		)`,
	},
	7: {
		// The Dify app a run uses (several apps behind one bot), chosen when it is first processed and kept for
		// its retries and resumes; '' for the one app of a bot without an apps file.
		`ALTER TABLE runs ADD COLUMN app TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX runs_app ON runs (app, created_at)`,
		// The ops override of one Dify host's breaker, over the one for all (breaker_settings); a change for all
		// clears them.
		`CREATE TABLE breaker_host_settings (
			host   TEXT PRIMARY KEY, -- dify.HostOf the apps' base URL, such as https://dify.example.com.
			mode   TEXT NOT NULL,
			reason TEXT NOT NULL,
			actor  TEXT NOT NULL,
			set_at BIGINT NOT NULL
		)`,
		`ALTER TABLE breaker_audit ADD COLUMN host TEXT NOT NULL DEFAULT ''`, // '' for all hosts.
	},
	8: {
		// Dify Human Input forms asked in the chat: the paused run's form, which input is asked, the answers so far.
		`CREATE TABLE questions (
			id         TEXT PRIMARY KEY, -- Dify's form id.
			run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, -- The run that paused.
			place      TEXT NOT NULL, -- The conversation without the person.
			status     TEXT NOT NULL, -- asking, submitted, expired.
			expires_at BIGINT NOT NULL DEFAULT 0,
			version    INTEGER NOT NULL, -- Counts saves: of two answers to one question, one wins.
			body       TEXT NOT NULL, -- bot.Question as JSON.
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL
		)`,
		`CREATE INDEX questions_place ON questions (place, status, created_at)`,
		`CREATE INDEX questions_due ON questions (status, expires_at)`,
	},
}

// dialect holds the few spellings SQLite and PostgreSQL do not share.
type dialect struct {
	autoID string // An auto-increment primary key column type.
	blob   string // A column of bytes.
	// mergeState is the runs.state column with a JSON object parameter's keys set in it (RFC 7396 merge; our
	// values are strings, so nothing is removed).
	mergeState string
}

var (
	sqliteDialect = dialect{autoID: "INTEGER PRIMARY KEY AUTOINCREMENT", blob: "BLOB",
		mergeState: `json_patch(CASE WHEN state = '' THEN '{}' ELSE state END, ?)`}
	postgresDialect = dialect{autoID: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", blob: "BYTEA",
		mergeState: `((CASE WHEN state = '' THEN '{}' ELSE state END)::jsonb || (?)::jsonb)::text`}
)

// migrate applies our missing migrations inside tx. The caller holds a lock that serialises concurrent
// Opens (SQLite's immediate transaction, Postgres's advisory lock), so the version check cannot race.
func migrate(ctx context.Context, tx conn, d dialect) error {
	if _, err := tx.exec(ctx, `CREATE TABLE IF NOT EXISTS difybot_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create difybot_migrations: %w", err)
	}
	var current int
	if err := tx.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM difybot_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read difybot_migrations: %w", err)
	}
	for v := current + 1; v < len(migrations); v++ {
		if migrations[v] == nil {
			continue // A number kept for a branch not merged yet: nothing to apply, nothing to record.
		}
		for _, stmt := range migrations[v] {
			stmt = strings.NewReplacer("{{id}}", d.autoID, "{{blob}}", d.blob).Replace(stmt)
			if _, err := tx.exec(ctx, stmt); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		if _, err := tx.exec(ctx, `INSERT INTO difybot_migrations (version, applied_at) VALUES (?, ?)`,
			v, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("record migration %d: %w", v, err)
		}
	}
	return nil
}
