package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/config"
	"github.com/difybot/difybot/dify/difytest"
)

// TestReadmeFollowsTheCode fails when the README's counts or its list of variables drift from the code: the
// number of simulator scenarios, of diagnosis codes, and every variable by group, in config's order.
func TestReadmeFollowsTheCode(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	counts := []struct {
		what string
		re   string
		want int
	}{
		{"scenarios", `-list prints the (\d+) scenarios`, len(difytest.Scenarios())},
		{"diagnosis codes", `… (\d+) in all`, len(bot.Codes())},
	}
	for _, c := range counts {
		m := regexp.MustCompile(c.re).FindStringSubmatch(readme)
		if m == nil {
			t.Errorf("README does not say how many %s there are (%s)", c.what, c.re)
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n != c.want {
			t.Errorf("README says %d %s; the code has %d", n, c.what, c.want)
		}
	}

	_, rest, ok := strings.Cut(readme, "<!-- env:")
	list, _, ok2 := strings.Cut(rest, "<!-- /env -->")
	if !ok || !ok2 {
		t.Fatal("README has no <!-- env: … <!-- /env --> list")
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(list), "\n")[1:] {
		title, names, _ := strings.Cut(strings.TrimPrefix(line, "- "), ": ")
		got = append(got, title+": "+strings.ReplaceAll(names, "`", ""))
	}
	var want []string
	for _, g := range config.Groups() {
		var names []string
		for _, v := range g.Vars {
			names = append(names, v.Name)
		}
		want = append(want, g.Title+": "+strings.Join(names, ", "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("README's variables:\n%s\nconfig.Groups:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
