package bot

import "slices"

// entry is one code's catalogue row.
type entry struct {
	code      Code
	title     string // Short admin name for summaries.
	en, ja    string // What the person is told: what happened, what to do.
	retryable bool
	causes    []string
	checks    []string
}

// entryFor falls back to internal so that an unknown code still gets texts rather than none.
func entryFor(c Code) *entry {
	if e, ok := byCode[c]; ok {
		return e
	}
	return byCode[CodeInternal]
}

var byCode = func() map[Code]*entry {
	m := make(map[Code]*entry, len(catalogue))
	for i := range catalogue {
		m[catalogue[i].code] = &catalogue[i]
	}
	return m
}()

// curlInfo is the check that proves key, URL and app in one request. $DIFY_API_KEY stays a shell variable.
const curlInfo = `curl -sS -H "Authorization: Bearer $DIFY_API_KEY" "$DIFY_BASE_URL/info"`

// catalogue holds every code's texts, in DESIGN.md's order. The texts are the product: the person is a colleague,
// never the admin, so the user texts say what happened and whether to try again or to tell an administrator.
// The rows live in two files, one per family of codes, because one list would be too long to read.
var catalogue = slices.Concat(difyCatalogue, botCatalogue)
