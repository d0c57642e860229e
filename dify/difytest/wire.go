package difytest

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// obj is a JSON object that keeps its keys in order. Dify builds its answers from Python dicts, which keep
// insertion order, so a faithful fake cannot use Go maps (sorted) for them.
type obj []kv

type kv struct {
	k string
	v any
}

// MarshalJSON writes the fields in order, without HTML escaping (orjson and json.dumps leave '<' alone).
func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := encodeTo(&b, f.k); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := encodeTo(&b, f.v); err != nil {
			return nil, fmt.Errorf("field %q: %w", f.k, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// get returns the value of key k, or nil.
func (o obj) get(k string) any {
	for _, f := range o {
		if f.k == k {
			return f.v
		}
	}
	return nil
}

func encodeTo(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode ends with a newline.
	return nil
}

// secs is a duration in float seconds, written the way Python writes a float (always with a decimal point).
type secs float64

func (s secs) MarshalJSON() ([]byte, error) {
	f := math.Max(math.Round(float64(s)*1000)/1000, 0.001)
	out := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(out, ".") {
		out += ".0"
	}
	return []byte(out), nil
}

// dialect is the Dify generation whose wire format the fake speaks.
type dialect int

const (
	v1  dialect = iota // 1.x: orjson, compact, UTF-8.
	v06                // 0.6: Python json.dumps, ", " and ": " separators, non-ASCII escaped.
)

// encode renders v in the dialect's JSON style.
func (d dialect) encode(v any) []byte {
	var b bytes.Buffer
	if err := encodeTo(&b, v); err != nil {
		// Every value the fake encodes is built here from plain types, so this is a bug in the fake.
		panic(fmt.Sprintf("difytest: encode: %v", err))
	}
	if d == v06 {
		return pyJSON(b.Bytes())
	}
	return b.Bytes()
}

// pyJSON rewrites compact JSON into what Python's json.dumps prints by default: a space after ',' and ':'
// outside strings, and every non-ASCII rune as \uXXXX (surrogate pairs above U+FFFF).
func pyJSON(compact []byte) []byte {
	var b bytes.Buffer
	inString, escaped := false, false
	for i := 0; i < len(compact); {
		c := compact[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(compact[i:])
			if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
				fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
			i += size
			continue
		}
		b.WriteByte(c)
		i++
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ',' || c == ':'):
			b.WriteByte(' ')
		}
	}
	return b.Bytes()
}

// apiErr is Dify's JSON error envelope (§1.2).
type apiErr struct {
	status  int
	code    string
	message string
	params  string // Set for reqparse-style errors, whose message was a dict keyed by the argument.
}

// body renders the envelope. The uncaught-exception form puts message first, and 0.6 (flask-restful) left
// out "status" for reqparse errors and uncaught exceptions.
func (e apiErr) body(d dialect) obj {
	if e.code == "unknown" {
		o := obj{{"message", e.message}, {"code", e.code}}
		if d == v06 {
			return o
		}
		return append(o, kv{"status", e.status})
	}
	o := obj{{"code", e.code}, {"message", e.message}}
	if e.params != "" {
		o = append(o, kv{"params", e.params})
		if d == v06 {
			return o
		}
	}
	return append(o, kv{"status", e.status})
}

// Dify's fixed error texts, so each appears once.
const (
	msgNotFound           = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
	msgInternal           = "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application."
	msgBadRequest         = "The browser (or proxy) sent a request that this server could not understand."
	msgAppMode            = "Please check if your app mode matches the right API route."
	msgMissingArg         = "Missing required parameter in the JSON body"
	msgUserRequired       = "Arg user must be provided."
	msgStopped            = "Stopped by user."
	msgStreamInternal     = "Internal Server Error, please contact support."
	msgAgentStreamingOnly = "Agent App only supports streaming response mode."
)

func errNotFound(msg string) apiErr { return apiErr{http.StatusNotFound, "not_found", msg, ""} }
func errInvalid(msg string) apiErr  { return apiErr{http.StatusBadRequest, "invalid_param", msg, ""} }
func errMissing(arg string) apiErr {
	return apiErr{http.StatusBadRequest, "invalid_param", msgMissingArg, arg}
}

// reply is a canned answer: either a Dify JSON error, or a page from something in front of Dify.
type reply struct {
	err    *apiErr
	status int
	ctype  string
	body   string
	header map[string]string
}

// jsonReply is a canned Dify error; header is an optional name and value to send with it.
func jsonReply(e apiErr, header ...string) reply {
	r := reply{err: &e}
	if len(header) == 2 {
		r.header = map[string]string{header[0]: header[1]}
	}
	return r
}

//go:embed testdata/*.html
var pageFiles embed.FS

func pageText(name string) string {
	b, err := pageFiles.ReadFile("testdata/" + name)
	if err != nil {
		panic(fmt.Sprintf("difytest: missing page %s: %v", name, err)) // The pages are embedded at build time.
	}
	return string(b)
}

// nginxPage is nginx's built-in error page. nginx writes it with CRLF line ends; the file keeps LF so that
// editors and git leave it alone.
func nginxPage(status int, file string) reply {
	return reply{status: status, ctype: "text/html", body: strings.ReplaceAll(pageText(file), "\n", "\r\n"),
		header: map[string]string{"Server": "nginx/1.27.3"}}
}

func cloudflarePage(status int, file string) reply {
	return reply{status: status, ctype: "text/html; charset=UTF-8", body: pageText(file),
		header: map[string]string{"Server": "cloudflare", "CF-RAY": "9223d1a6bc5e8f41-NRT"}}
}

// writeJSON answers like flask-restx's output_json: the dialect's JSON and a trailing newline.
func writeJSON(w http.ResponseWriter, d dialect, status int, v any) {
	body := append(d.encode(v), '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// writeErr answers with Dify's error envelope. A 401 carries the realm header of the dialect's framework.
func writeErr(w http.ResponseWriter, d dialect, e apiErr) {
	if e.status == http.StatusUnauthorized {
		realm := `Bearer realm="api"`
		if d == v06 {
			realm = `Basic realm="flask-restful"`
		}
		w.Header().Set("WWW-Authenticate", realm)
	}
	writeJSON(w, d, e.status, e.body(d))
}

// write sends a canned reply. It first drains what is left of the request body, so that a client still
// streaming an upload reads the answer instead of a reset connection.
func (rp reply) write(w http.ResponseWriter, r *http.Request, d dialect) {
	drain(r)
	for k, v := range rp.header {
		w.Header().Set(k, v)
	}
	if rp.err != nil {
		writeErr(w, d, *rp.err)
		return
	}
	if rp.ctype != "" {
		w.Header().Set("Content-Type", rp.ctype)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(rp.body)))
	w.WriteHeader(rp.status)
	io.WriteString(w, rp.body)
}

// drainLimit bounds how much of an unwanted request body the fake reads before answering.
const drainLimit = 256 << 20

func drain(r *http.Request) {
	io.Copy(io.Discard, io.LimitReader(r.Body, drainLimit))
}

// newID returns a random version 4 UUID, the form of every Dify id.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// isUUID reports whether s is a UUID in the canonical 8-4-4-4-12 form that Dify validates.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", rune(c)) {
				return false
			}
		}
	}
	return true
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
