package bot

import (
	"strings"
	"testing"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		10 << 20: "10 MiB", 10e6: "10 MB", 25 << 20: "25 MiB", 1 << 30: "1 GiB", 2e9: "2 GB",
		512 << 10: "512 KiB", 1500: "1.5 KiB", 11 << 20 / 10 * 10: "11.0 MiB", 999: "999 bytes", 2000: "2 kB",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestUploadTooLargeText(t *testing.T) {
	for _, tt := range []struct {
		lang  Lang
		limit int64
		want  []string
	}{
		{LangEN, 10 << 20, []string{"up to 10 MiB", "Reference: w1"}},
		{LangJA, 10 << 20, []string{"10 MiB まで", "参照番号: w1"}},
		{"ja-JP", 10e6, []string{"10 MB まで"}},
	} {
		got := UploadTooLargeText(tt.lang, tt.limit, "w1")
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("UploadTooLargeText(%s, %d) = %q, lacks %q", tt.lang, tt.limit, got, w)
			}
		}
	}
}
