package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/difybot/difybot/bot"
)

const outputFileColumns = `id, run_id, attempt, seq, file_key, name, mime_type, size, preview_size, created_at, expires_at`

// AddOutputFile keeps f with its bytes and its preview's until f.ExpiresAt. The same run, attempt and key is kept
// once.
func (s *Store) AddOutputFile(ctx context.Context, f bot.OutputFile, data, preview []byte) error {
	var pv any // NULL when the file is its own preview.
	if len(preview) > 0 {
		pv = preview
	}
	_, err := s.db.exec(ctx, `INSERT INTO output_files (`+outputFileColumns+`, data, preview)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, attempt, file_key) DO NOTHING`,
		f.ID, f.RunID, f.Attempt, f.Seq, f.Key, f.Name, f.MIMEType, f.Size, int64(len(preview)),
		nanos(f.CreatedAt), nanos(f.ExpiresAt), data, pv)
	if err != nil {
		return fmt.Errorf("store: add output file of run %s: %w", f.RunID, err)
	}
	return nil
}

// OutputFiles lists run id's files, by attempt and place, without their bytes.
func (s *Store) OutputFiles(ctx context.Context, runID string) ([]bot.OutputFile, error) {
	rows, err := s.db.query(ctx, `SELECT `+outputFileColumns+` FROM output_files WHERE run_id = ? ORDER BY attempt, seq, id`, runID)
	if err != nil {
		return nil, fmt.Errorf("store: output files of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []bot.OutputFile
	for rows.Next() {
		f, err := scanOutputFile(rows)
		if err != nil {
			return nil, fmt.Errorf("store: output files of %s: %w", runID, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: output files of %s: %w", runID, err)
	}
	return out, nil
}

func scanOutputFile(sc row, more ...any) (bot.OutputFile, error) {
	var f bot.OutputFile
	var created, expires int64
	err := sc.Scan(append([]any{&f.ID, &f.RunID, &f.Attempt, &f.Seq, &f.Key, &f.Name, &f.MIMEType, &f.Size, &f.PreviewSize,
		&created, &expires}, more...)...)
	f.CreatedAt, f.ExpiresAt = fromNanos(created), fromNanos(expires)
	return f, err
}

// OutputFileData returns file id with its bytes, or its preview's (the file's own when it has none), or
// bot.ErrNotFound.
func (s *Store) OutputFileData(ctx context.Context, id string, preview bool) (bot.OutputFile, []byte, error) {
	col := "data"
	if preview {
		col = "COALESCE(preview, data)"
	}
	var data []byte
	f, err := scanOutputFile(s.db.queryRow(ctx, `SELECT `+outputFileColumns+`, `+col+` FROM output_files WHERE id = ?`, id), &data)
	if errNoRows(err) {
		return bot.OutputFile{}, nil, fmt.Errorf("store: output file %s: %w", id, bot.ErrNotFound)
	}
	if err != nil {
		return bot.OutputFile{}, nil, fmt.Errorf("store: output file %s: %w", id, err)
	}
	return f, data, nil
}

// DeleteOutputFiles deletes the files expired at now.
func (s *Store) DeleteOutputFiles(ctx context.Context, now time.Time) (int, error) {
	n, err := s.db.exec(ctx, `DELETE FROM output_files WHERE expires_at <= ?`, nanos(now))
	if err != nil {
		return 0, fmt.Errorf("store: delete expired output files: %w", err)
	}
	return int(n), nil
}

// SigningKey returns the key that signs file links. The first replica to ask makes it; the others, and later
// starts, read the same one.
func (s *Store) SigningKey(ctx context.Context) ([]byte, error) {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read never fails.
	if _, err := s.db.exec(ctx, `INSERT INTO signing_keys (name, secret, created_at) VALUES ('files', ?, ?)
		ON CONFLICT (name) DO NOTHING`, k, time.Now().UnixNano()); err != nil {
		return nil, fmt.Errorf("store: signing key: %w", err)
	}
	var key []byte
	if err := s.db.queryRow(ctx, `SELECT secret FROM signing_keys WHERE name = 'files'`).Scan(&key); err != nil {
		return nil, fmt.Errorf("store: signing key: %w", err)
	}
	return key, nil
}
