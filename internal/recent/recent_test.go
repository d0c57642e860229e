package recent_test

import (
	"fmt"
	"testing"

	"github.com/difybot/difybot/internal/recent"
)

func TestSetKeepsTheLatestKeys(t *testing.T) {
	tests := []struct {
		name  string
		max   int
		added int
	}{
		{"under the bound", 8, 3},
		{"at the bound", 8, 8},
		{"past the bound", 8, 21},
		{"default bound", 0, recent.DefaultMax + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &recent.Set{Max: tt.max}
			for i := range tt.added {
				s.Add(fmt.Sprint(i))
				s.Add(fmt.Sprint(i)) // Adding again changes nothing.
			}
			bound := tt.max
			if bound == 0 {
				bound = recent.DefaultMax
			}
			kept := 0
			for i := range tt.added {
				if s.Has(fmt.Sprint(i)) {
					kept++
				}
			}
			for i := max(0, tt.added-bound/2); i < tt.added; i++ {
				if !s.Has(fmt.Sprint(i)) {
					t.Errorf("key %d of the last %d forgotten", i, bound/2)
				}
			}
			if kept > bound || kept < min(tt.added, bound/2) {
				t.Errorf("%d of %d keys kept, want between %d and %d", kept, tt.added, min(tt.added, bound/2), bound)
			}
			if s.Has("never added") {
				t.Error("a key never added is remembered")
			}
		})
	}
}
