package bottest

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/difybot/difybot/bot"
)

// storedFile is an output file and its bytes.
type storedFile struct {
	f             bot.OutputFile
	data, preview []byte
}

// AddOutputFile keeps f and its bytes; the same run, attempt and key is kept once.
func (s *Store) AddOutputFile(_ context.Context, f bot.OutputFile, data, preview []byte) error {
	f, err := roundTrip(f)
	if err != nil {
		return fmt.Errorf("bottest: add output file: %w", err)
	}
	f.PreviewSize = int64(len(preview))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.files = map[string]*storedFile{}
	}
	for _, sf := range s.files {
		if sf.f.RunID == f.RunID && sf.f.Attempt == f.Attempt && sf.f.Key == f.Key {
			return nil
		}
	}
	s.files[f.ID] = &storedFile{f: f, data: slices.Clone(data), preview: slices.Clone(preview)}
	return nil
}

// OutputFiles lists run id's files by attempt and place.
func (s *Store) OutputFiles(_ context.Context, runID string) ([]bot.OutputFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bot.OutputFile
	for _, sf := range s.files {
		if sf.f.RunID == runID {
			out = append(out, sf.f)
		}
	}
	slices.SortFunc(out, func(a, b bot.OutputFile) int {
		if a.Attempt != b.Attempt {
			return a.Attempt - b.Attempt
		}
		return a.Seq - b.Seq
	})
	return out, nil
}

// OutputFileData returns file id and its bytes, or its preview's (the file's own when it has none).
func (s *Store) OutputFileData(_ context.Context, id string, preview bool) (bot.OutputFile, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sf, ok := s.files[id]
	if !ok {
		return bot.OutputFile{}, nil, fmt.Errorf("bottest: output file %s: %w", id, bot.ErrNotFound)
	}
	if preview && sf.preview != nil {
		return sf.f, slices.Clone(sf.preview), nil
	}
	return sf.f, slices.Clone(sf.data), nil
}

// DeleteOutputFiles deletes the files expired at now.
func (s *Store) DeleteOutputFiles(_ context.Context, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, sf := range s.files {
		if !sf.f.ExpiresAt.After(now) {
			delete(s.files, id)
			n++
		}
	}
	return n, nil
}

// SigningKey returns the store's key, made on first use.
func (s *Store) SigningKey(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key == nil {
		s.key = make([]byte, 32)
		rand.Read(s.key)
	}
	return slices.Clone(s.key), nil
}
