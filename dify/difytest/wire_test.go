package difytest

import (
	"fmt"
	"testing"
)

func TestEncodeDialects(t *testing.T) {
	v := obj{{"event", "text_chunk"}, {"data", obj{{"text", `640×480 <b> "a,b": 😀`}, {"n", []int{1, 2}}}}, {"t", secs(2)}}
	tests := []struct {
		d    dialect
		want string
	}{
		{v1, `{"event":"text_chunk","data":{"text":"640×480 <b> \"a,b\": 😀","n":[1,2]},"t":2.0}`},
		{v06, `{"event": "text_chunk", "data": {"text": "640\u00d7480 <b> \"a,b\": \ud83d\ude00", "n": [1, 2]}, "t": 2.0}`},
	}
	for _, tt := range tests {
		if got := string(tt.d.encode(v)); got != tt.want {
			t.Errorf("dialect %d:\n got %s\nwant %s", tt.d, got, tt.want)
		}
	}
}

func TestErrorEnvelopes(t *testing.T) {
	tests := []struct {
		e    apiErr
		d    dialect
		want string
	}{
		{errInvalid("Workflow not published"), v1, `{"code":"invalid_param","message":"Workflow not published","status":400}`},
		{errMissing("inputs"), v1, `{"code":"invalid_param","message":"Missing required parameter in the JSON body","params":"inputs","status":400}`},
		{errMissing("inputs"), v06, `{"code": "invalid_param", "message": "Missing required parameter in the JSON body", "params": "inputs"}`},
		{apiErr{500, "unknown", "Internal Server Error", ""}, v1, `{"message":"Internal Server Error","code":"unknown","status":500}`},
		{apiErr{500, "unknown", "Internal Server Error", ""}, v06, `{"message": "Internal Server Error", "code": "unknown"}`},
	}
	for _, tt := range tests {
		if got := string(tt.d.encode(tt.e.body(tt.d))); got != tt.want {
			t.Errorf("%+v in dialect %d:\n got %s\nwant %s", tt.e, tt.d, got, tt.want)
		}
	}
}

func TestSecs(t *testing.T) {
	for in, want := range map[float64]string{0: "0.001", 0.0123456: "0.012", 3.412: "3.412", 12: "12.0"} {
		if b, _ := secs(in).MarshalJSON(); string(b) != want {
			t.Errorf("secs(%v) = %s, want %s", in, b, want)
		}
	}
}

func TestRecentForgetsTheOldest(t *testing.T) {
	var r recent[int]
	for i := range maxKept + 2 {
		r.put(fmt.Sprint(i), i)
	}
	if _, ok := r.get("1"); ok {
		t.Error("entry 1 kept beyond the bound")
	}
	if v, ok := r.get(fmt.Sprint(maxKept + 1)); !ok || v != maxKept+1 || len(r.m) != maxKept {
		t.Errorf("newest entry %d %v; %d kept", v, ok, len(r.m))
	}
}

func TestChunksAddUp(t *testing.T) {
	for _, s := range []string{"", "one", "No image was attached.", "Received a PNG image, 640×480 px, 12.3 KB. You said: hi."} {
		got := ""
		for _, c := range chunks(s) {
			got += c
		}
		if got != s || len(chunks(s)) > 4 {
			t.Errorf("chunks(%q) = %q", s, chunks(s))
		}
	}
}
