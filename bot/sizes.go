package bot

import (
	"fmt"
	"strconv"
	"strings"
)

// Bytes writes a size in the unit it was most likely set in: 10485760 is "10 MiB", 10000000 is "10 MB";
// anything else gets one decimal in the binary unit. A limit shown to a person must be the limit enforced.
func Bytes(n int64) string {
	units := []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1e9, "GB"}, {1 << 20, "MiB"}, {1e6, "MB"}, {1 << 10, "KiB"}, {1e3, "kB"}}
	for _, u := range units {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.name
		}
	}
	for _, u := range units {
		if n >= u.size && strings.HasSuffix(u.name, "iB") {
			return fmt.Sprintf("%.1f %s", float64(n)/float64(u.size), u.name)
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// UploadTooLargeText is what a person is told when a photo is refused as it arrives because it is over limit
// bytes (the web chat's upload, before any run exists): image_too_large's advice, the limit, and ref.
func UploadTooLargeText(lang Lang, limit int64, ref string) string {
	if isJapanese(lang) {
		return withRef(fmt.Sprintf("画像が大きすぎます（ボットが受け付けるのは %s までです）。スクリーンショットや解像度を下げた写真など、より小さい画像を送ってください。", Bytes(limit)), "参照番号: ", ref)
	}
	return withRef(fmt.Sprintf("Your image is too large: the bot takes images up to %s. Please send a smaller image, such as a screenshot or a photo at a lower resolution.", Bytes(limit)), "Reference: ", ref)
}
