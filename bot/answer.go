package bot

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
)

// An answer reads well wherever it is shown: the model's reasoning (<think>…</think>) is removed, and an object or
// list output becomes lines in the platform-neutral markdown the adapters convert (Slack mrkdwn, LINE plain text,
// the web chat's markdown), never Go's map[…] syntax. File objects are not text: they are sent as files.

var (
	thinkBlock = regexp.MustCompile(`(?is)<think(?:\s[^>]{0,512})?>.*?</think\s*>`)
	thinkOpen  = regexp.MustCompile(`(?is)^\s*<think(?:\s[^>]{0,512})?>`)
	thinkClose = regexp.MustCompile(`(?is)</think\s*>`)
	blankRuns  = regexp.MustCompile(`\n[ \t]*\n(?:[ \t]*\n)+`)
)

// stripThink removes reasoning blocks, an unterminated <think> at the start (a run stopped mid-thought: all of
// it is reasoning) and a stray closing tag, then tidies the blank lines they leave.
func stripThink(s string) string {
	if !strings.Contains(strings.ToLower(s), "think") {
		return s
	}
	s = thinkBlock.ReplaceAllString(s, "")
	if thinkOpen.MatchString(s) {
		return ""
	}
	if loc := thinkClose.FindStringIndex(s); loc != nil && !strings.Contains(strings.ToLower(s[:loc[0]]), "<think") {
		// A model whose template opens the block itself sends only the closing tag: what precedes is reasoning.
		s = s[loc[1]:]
	}
	return strings.TrimSpace(blankRuns.ReplaceAllString(s, "\n\n"))
}

// field is one key of a JSON object, kept in the order Dify sent it.
type field struct {
	key string
	val any // string, json.Number, bool, nil, []any, or []field for an object.
}

// decodeOrdered reads JSON keeping the order of object keys; numbers stay as written.
func decodeOrdered(raw []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := orderedValue(dec)
	return v, err == nil
}

func orderedValue(dec *json.Decoder) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := t.(json.Delim)
	if !ok {
		return t, nil
	}
	switch d {
	case '{':
		obj := []field{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			v, err := orderedValue(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, field{k, v})
		}
		_, err = dec.Token()
		return obj, err
	default: // '['
		list := []any{}
		for dec.More() {
			v, err := orderedValue(dec)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err = dec.Token()
		return list, err
	}
}

// ordered turns a value decoded into map[string]any (no order to keep) into the ordered form, keys sorted.
func ordered(v any) any {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out := make([]field, 0, len(v))
		for _, k := range keys {
			out = append(out, field{k, ordered(v[k])})
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = ordered(e)
		}
		return out
	case float64:
		b, _ := json.Marshal(v)
		return json.Number(b)
	}
	return v
}

// isFile reports a Dify file object (sent as a file, not shown as text).
func isFile(v any) bool {
	obj, ok := v.([]field)
	if !ok {
		return false
	}
	for _, f := range obj {
		if f.key == "dify_model_identity" {
			return f.val == "__dify__file__"
		}
	}
	return false
}

// onlyFiles reports a value that is a file or a list of files.
func onlyFiles(v any) bool {
	if list, ok := v.([]any); ok && len(list) > 0 {
		for _, e := range list {
			if !isFile(e) {
				return false
			}
		}
		return true
	}
	return isFile(v)
}

// render writes an output as text: a string as it is (reasoning removed), a scalar as JSON writes it, an object
// as "**key**: value" lines and a list as "- item" lines, nested ones indented. Files and nulls are left out.
func render(v any) string {
	if onlyFiles(v) {
		return ""
	}
	var b strings.Builder
	renderInto(&b, v, "")
	return strings.TrimRight(b.String(), "\n")
}

func renderInto(b *strings.Builder, v any, indent string) {
	switch v := v.(type) {
	case []field:
		for _, f := range v {
			if f.val == nil || onlyFiles(f.val) {
				continue
			}
			if s, ok := scalar(f.val); ok {
				sep := ": "
				if strings.Contains(s, "\n") {
					sep = ":"
				}
				b.WriteString(indent + "**" + f.key + "**" + sep + oneLine(s, indent+"  ") + "\n")
				continue
			}
			b.WriteString(indent + "**" + f.key + "**:\n")
			renderInto(b, f.val, indent+"  ")
		}
	case []any:
		for _, e := range v {
			if e == nil || isFile(e) {
				continue
			}
			if s, ok := scalar(e); ok {
				b.WriteString(indent + "- " + oneLine(s, indent+"  ") + "\n")
				continue
			}
			if obj, ok := e.([]field); ok && flat(obj) {
				var parts []string
				for _, f := range obj {
					if s, ok := scalar(f.val); ok && f.val != nil {
						parts = append(parts, f.key+": "+s)
					}
				}
				b.WriteString(indent + "- " + strings.Join(parts, ", ") + "\n")
				continue
			}
			b.WriteString(indent + "-\n")
			renderInto(b, e, indent+"  ")
		}
	default:
		if s, ok := scalar(v); ok {
			b.WriteString(indent + s + "\n")
		}
	}
}

// scalar writes a value that fits on a line, and reports whether it is one.
func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return stripThink(v), true
	case json.Number:
		return v.String(), true
	case bool:
		if v {
			return "true", true
		}
		return "false", true
	case nil:
		return "", true
	}
	return "", false
}

// flat reports a small object of scalars, written on one line in a list.
func flat(obj []field) bool {
	if len(obj) > 4 {
		return false
	}
	for _, f := range obj {
		if _, ok := scalar(f.val); !ok {
			return false
		}
	}
	return true
}

// oneLine indents the continuation lines of a multi-line string under its key.
func oneLine(s, indent string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	return "\n" + indent + strings.ReplaceAll(s, "\n", "\n"+indent)
}

// sameKeys reports whether fields has exactly the keys of m.
func sameKeys(fields []field, m map[string]any) bool {
	if fields == nil || len(fields) != len(m) {
		return false
	}
	for _, f := range fields {
		if _, ok := m[f.key]; !ok {
			return false
		}
	}
	return true
}

// outputTexts chooses what of the outputs is shown, and returns it with the keys used. Configured keys
// (DIFY_OUTPUT_KEY, comma-separated) are shown in their order; auto takes the first of the usual names that has
// text, else the only string output, else the only output that is not a file. A file output gives no text: it is sent as a file.
func outputTexts(outputs map[string]any, raw json.RawMessage, keys string) (string, string) {
	var fields []field
	if v, ok := decodeOrdered(raw); ok {
		fields, _ = v.([]field)
	}
	if !sameKeys(fields, outputs) {
		fields, _ = ordered(outputs).([]field) // No raw JSON (0.x sent a string), or it is not these outputs.
	}
	get := func(k string) (any, bool) {
		for _, f := range fields {
			if f.key == k {
				return f.val, true
			}
		}
		return nil, false
	}
	if keys != "" && keys != "auto" {
		var parts, used []string
		for _, k := range strings.Split(keys, ",") {
			v, ok := get(k)
			if !ok {
				continue
			}
			used = append(used, k)
			if t := render(v); strings.TrimSpace(t) != "" {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, "\n\n"), strings.Join(used, ",")
	}
	for _, k := range outputPreference {
		if v, ok := get(k); ok && !onlyFiles(v) {
			if t := render(v); strings.TrimSpace(t) != "" {
				return t, k
			}
		}
	}
	// The only string output, as before; else the only output of any kind but a file.
	for _, stringsOnly := range []bool{true, false} {
		var only *field
		n := 0
		for i, f := range fields {
			if _, isString := f.val.(string); f.val == nil || onlyFiles(f.val) || stringsOnly && !isString {
				continue
			}
			n++
			only = &fields[i]
		}
		if n == 1 {
			return render(only.val), only.key
		}
	}
	return "", ""
}
