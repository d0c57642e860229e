package config

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultApp is the name of the one app DIFY_BASE_URL and DIFY_API_KEY describe when there is no DIFY_APPS_FILE.
const DefaultApp = "default"

// Apps is DIFY_APPS_FILE: several Dify apps behind one bot, and which one a message goes to. Its zero value (no
// file) means the one app of the DIFY_ variables.
type Apps struct {
	File string // The file's path.
	List []App  // In the file's order.
	// Default is the app for a message no route names (the first app when the file does not say).
	Default string
	// Direct is the app a direct message (a Slack DM, a LINE 1:1 chat) uses before the person chooses one;
	// "" offers the person the choice.
	Direct string
}

// App is one Dify app of the apps file and the routes that lead to it.
type App struct {
	Name string
	Line int // Where the file defines it.
	// Dify is the app's base URL, key and settings; ResponseMode and Timeout are DIFY_RESPONSE_MODE's and
	// DIFY_TIMEOUT's for every app.
	Dify   Dify
	KeyEnv string // The variable holding the key (api_key_env), for messages: the key never is in the file.
	// Keywords send a message to the app when it starts with one: "receipt: …" or "/receipt …". Lower case.
	Keywords []string
	// SlackChannels and LINEChats are the Slack channel ids and LINE group or room ids whose messages go to it.
	SlackChannels []string
	LINEChats     []string
}

// AppList is every app the bot serves: the file's, or the one app of the DIFY_ variables named DefaultApp.
func (c Config) AppList() []App {
	if len(c.Apps.List) > 0 {
		return c.Apps.List
	}
	return []App{{Name: DefaultApp, Dify: c.Dify, KeyEnv: "DIFY_API_KEY"}}
}

// appKeys are what an app may set in the file. Those named like a DIFY_ variable stand for it, and default to it.
var appKeys = []string{"api_key", "api_key_env", "app_mode", "base_url", "image_input", "image_prompt", "inputs",
	"keywords", "line_chats", "output_key", "slack_channels", "text_input"}

// appsFile reads DIFY_APPS_FILE. Every problem is reported, each with its line, and an app with problems is still
// listed (with defaults in place of what it could not use) so that doctor can go on checking the others.
func (l *loader) appsFile(name string, base Dify) Apps {
	path := l.get(name, false)
	if path == "" {
		return Apps{}
	}
	out := Apps{File: path}
	data, err := os.ReadFile(path)
	if err != nil {
		l.bad(name, path, "cannot be read: "+strings.TrimPrefix(err.Error(), "open "+path+": "), "")
		return out
	}
	f := appsParser{l: l, name: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml's own messages name the line ("yaml: line 3: mapping values are not allowed in this context").
		l.errs = append(l.errs, fmt.Errorf("%s: %s: %s", name, path, strings.TrimPrefix(err.Error(), "yaml: ")))
		return out
	}
	if len(doc.Content) == 0 {
		f.bad(1, "is empty", "list the apps under apps:, as in deploy/apps.example.yaml")
		return out
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		f.bad(top.Line, "must be a mapping with apps:, default: and direct:", "see deploy/apps.example.yaml")
		return out
	}
	var def, direct *yaml.Node
	var apps *yaml.Node
	for k, v := range pairs(top) {
		switch k.Value {
		case "apps":
			apps = v
		case "default":
			def = v
		case "direct":
			direct = v
		default:
			f.bad(k.Line, fmt.Sprintf("unknown key %q", k.Value), "the file has apps:, default: and direct:")
		}
	}
	if apps == nil || apps.Kind != yaml.MappingNode || len(apps.Content) == 0 {
		line := top.Line
		if apps != nil {
			line = apps.Line
		}
		f.bad(line, "apps: must list at least one app by name", "see deploy/apps.example.yaml")
		return out
	}
	seen := map[string]int{} // Route → line, so a channel or keyword given to two apps names both.
	for k, v := range pairs(apps) {
		if prev := slices.IndexFunc(out.List, func(a App) bool { return a.Name == k.Value }); prev >= 0 {
			f.bad(k.Line, fmt.Sprintf("app %q is defined twice (first on line %d)", k.Value, out.List[prev].Line), "")
			continue
		}
		out.List = append(out.List, f.app(k, v, base, seen))
	}
	names := make([]string, len(out.List))
	for i, a := range out.List {
		names[i] = a.Name
	}
	pick := func(key string, n *yaml.Node) string {
		if n == nil {
			return ""
		}
		if n.Kind != yaml.ScalarNode || !slices.Contains(names, n.Value) {
			f.bad(n.Line, fmt.Sprintf("%s: names no app of the file (got %q)", key, n.Value), "use one of: "+strings.Join(names, ", "))
			return ""
		}
		return n.Value
	}
	out.Default, out.Direct = pick("default", def), pick("direct", direct)
	if out.Default == "" && len(names) > 0 {
		out.Default = names[0]
	}
	return out
}

// appsParser reports problems as "DIFY_APPS_FILE: line N: …".
type appsParser struct {
	l    *loader
	name string
}

func (f appsParser) bad(line int, problem, hint string) {
	msg := fmt.Sprintf("%s: line %d: %s", f.name, line, problem)
	if hint != "" {
		msg += "; " + hint
	}
	f.l.errs = append(f.l.errs, fmt.Errorf("%s", msg))
}

// app reads one app's mapping. Its settings go through the same checks as the DIFY_ variables they stand for,
// under a name that says where they are ("DIFY_APPS_FILE: line 12: apps.receipts.app_mode").
func (f appsParser) app(k, v *yaml.Node, base Dify, seen map[string]int) App {
	a := App{Name: k.Value, Line: k.Line, Dify: base}
	a.Dify.APIKey = ""
	if !isAppName(a.Name) {
		f.bad(k.Line, fmt.Sprintf("app name %q must be lower-case letters, digits, - or _", a.Name), "")
	}
	if v.Kind != yaml.MappingNode {
		f.bad(v.Line, fmt.Sprintf("app %q must be a mapping of its settings", a.Name), "see deploy/apps.example.yaml")
		return a
	}
	values, lines := map[string]string{}, map[string]int{}
	label := func(key string) string {
		line, ok := lines[key]
		if !ok {
			line = k.Line
		}
		return fmt.Sprintf("%s: line %d: apps.%s.%s", f.name, line, a.Name, key)
	}
	sub := &loader{getenv: func(n string) string { return values[n] }}
	var inputs *yaml.Node
	for key, val := range pairs(v) {
		if !slices.Contains(appKeys, key.Value) {
			f.bad(key.Line, fmt.Sprintf("apps.%s: unknown key %q", a.Name, key.Value), "an app has "+strings.Join(appKeys, ", "))
			continue
		}
		lines[key.Value] = key.Line
		switch key.Value {
		case "inputs":
			inputs = val
		case "keywords", "slack_channels", "line_chats":
			list := f.list(a.Name, key.Value, val)
			for _, item := range list {
				route := key.Value + ":" + item
				if key.Value == "keywords" {
					item = strings.ToLower(item)
					route = "keywords:" + item
					if strings.ContainsAny(item, " :/") {
						f.bad(val.Line, fmt.Sprintf("apps.%s.keywords: %q must be one word without spaces, : or /", a.Name, item), "")
						continue
					}
				}
				if at, dup := seen[route]; dup {
					f.bad(val.Line, fmt.Sprintf("apps.%s.%s: %q is given to another app too (line %d)", a.Name, key.Value, item, at), "a channel, chat or keyword leads to one app")
					continue
				}
				seen[route] = val.Line
				switch key.Value {
				case "keywords":
					a.Keywords = append(a.Keywords, item)
				case "slack_channels":
					a.SlackChannels = append(a.SlackChannels, item)
				default:
					a.LINEChats = append(a.LINEChats, item)
				}
			}
		default:
			if val.Kind != yaml.ScalarNode {
				f.bad(val.Line, fmt.Sprintf("apps.%s.%s: must be a single value", a.Name, key.Value), "")
				continue
			}
			values[label(key.Value)] = val.Value
		}
	}
	if _, ok := lines["api_key"]; ok {
		sub.badSecret(label("api_key"), "an API key must not be written in the file (value not shown); put it in an environment variable and name that here: api_key_env: "+strings.ToUpper(strings.ReplaceAll(a.Name, "-", "_"))+"_DIFY_KEY")
	}
	if v := sub.str(label("base_url"), ""); v != "" {
		a.Dify.BaseURL = sub.difyBaseURL(label("base_url"), base.BaseURL)
	}
	a.Dify.AppMode = sub.enum(label("app_mode"), base.AppMode, Auto, "workflow", "chat")
	a.Dify.ImageInput = orAuto(values[label("image_input")], sub.variable(label("image_input")), base.ImageInput)
	a.Dify.TextInput = orAuto(values[label("text_input")], sub.variable(label("text_input")), base.TextInput)
	a.Dify.OutputKey = orAuto(values[label("output_key")], sub.variable(label("output_key")), base.OutputKey)
	if _, ok := lines["image_prompt"]; ok {
		a.Dify.ImagePrompt = strings.TrimSpace(values[label("image_prompt")])
	}
	if inputs != nil {
		a.Dify.Inputs = f.inputs(a.Name, inputs)
	}
	a.KeyEnv = strings.TrimSpace(values[label("api_key_env")])
	switch {
	case a.KeyEnv == "":
		f.bad(k.Line, fmt.Sprintf("apps.%s: api_key_env is missing", a.Name), "name the environment variable that holds the app's key, e.g. api_key_env: "+strings.ToUpper(strings.ReplaceAll(a.Name, "-", "_"))+"_DIFY_KEY")
	case strings.HasPrefix(a.KeyEnv, "app-"):
		sub.badSecret(label("api_key_env"), "holds an API key (value not shown): the file names the environment variable that holds the key, such as RECEIPTS_DIFY_KEY")
		a.KeyEnv = ""
	case !isIdent(a.KeyEnv):
		sub.bad(label("api_key_env"), a.KeyEnv, "must be the name of an environment variable", "")
	default:
		a.Dify.APIKey = f.l.difyAPIKey(a.KeyEnv)
		if a.Dify.APIKey == "" {
			sub.badSecret(label("api_key_env"), a.KeyEnv+" is not set; set it to the app's API key: "+whereAPIKey)
		}
	}
	if len(a.Keywords) == 0 {
		a.Keywords = []string{a.Name}
		route := "keywords:" + a.Name
		if at, dup := seen[route]; dup {
			f.bad(k.Line, fmt.Sprintf("apps.%s: its name is another app's keyword (line %d)", a.Name, at), "give this app keywords: of its own")
		}
		seen[route] = k.Line
	}
	f.l.errs = append(f.l.errs, sub.errs...)
	return a
}

// orAuto is a start or output variable's setting: the file's, else the environment's.
func orAuto(set, checked, env string) string {
	if strings.TrimSpace(set) == "" {
		return env
	}
	return checked
}

// list reads a sequence of strings (a single string is a list of one).
func (f appsParser) list(app, key string, n *yaml.Node) []string {
	if n.Kind == yaml.ScalarNode && n.Value != "" {
		return []string{n.Value}
	}
	var out []string
	if n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode && strings.TrimSpace(c.Value) != "" {
				out = append(out, strings.TrimSpace(c.Value))
				continue
			}
			f.bad(c.Line, fmt.Sprintf("apps.%s.%s: each item must be a single value", app, key), "")
		}
		return out
	}
	f.bad(n.Line, fmt.Sprintf("apps.%s.%s: must be a list such as [C0123, C0456]", app, key), "")
	return nil
}

// inputs reads an app's fixed start-form values as DIFY_INPUTS would give them (through JSON, so numbers are
// float64 either way).
func (f appsParser) inputs(app string, n *yaml.Node) map[string]any {
	var v any
	if n.Kind != yaml.MappingNode || n.Decode(&v) != nil {
		f.bad(n.Line, fmt.Sprintf("apps.%s.inputs: must be a mapping of start-form variables to values", app), "")
		return nil
	}
	b, err := json.Marshal(v)
	var m map[string]any
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		f.bad(n.Line, fmt.Sprintf("apps.%s.inputs: %v", app, err), "")
		return nil
	}
	return m
}

// pairs walks a mapping node's keys and values.
func pairs(n *yaml.Node) func(yield func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}

func isAppName(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return s != ""
}
