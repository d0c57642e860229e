package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/difybot/difybot/dify"
)

// appTTL is how long what we learned about the Dify app is trusted; an edited start form shows up this late.
const appTTL = 5 * time.Minute

// discoverTimeout bounds one discovery, which runs on behalf of every caller waiting for it.
const discoverTimeout = 30 * time.Second

// AppSettings are the operator's choices about the app: DIFY_APP_MODE, DIFY_IMAGE_INPUT and DIFY_TEXT_INPUT.
// Empty or "auto" means ask Dify.
type AppSettings struct {
	Mode       string // auto, workflow, chat.
	ImageInput string // auto, files, or a start variable.
	TextInput  string // auto or a start variable.
	// Inputs are fixed values for other start fields (DIFY_INPUTS), checked against the form.
	Inputs map[string]any
}

// AppSource is the part of Dify that describes an app. *dify.Client implements it.
type AppSource interface {
	Info(ctx context.Context) (*dify.Info, error)
	Parameters(ctx context.Context) (*dify.Parameters, error)
}

// App is what the pipeline, doctor and `run` know of the Dify app: how it runs and where a message's parts go.
// Discover is its one source, so the three never disagree.
type App struct {
	Mode       string // Dify's own mode from /v1/info; "" when it was not asked (DIFY_APP_MODE set) or did not say.
	Chat       bool   // chat, agent-chat or advanced-chat: use /chat-messages.
	ImageInput string // Start variable for images; "" means sys.files.
	ImageList  bool   // ImageInput is a file-list.
	TextInput  string // Start variable for the text (workflow apps).
	ImageLimit int64  // Dify's image upload limit in bytes; 0 when it does not say.
	// Form is the start form; nil when Dify would not give it (an unpublished workflow answers app_unavailable).
	Form          []dify.InputField
	TextRequired  bool     // The text input is a required field of the form.
	TextDefault   string   // The text field's default, sent with a photo that comes alone.
	ImageRequired bool     // The image input is a required field of the form.
	Suggested     []string // Dify's suggested_questions, offered as choices.
	Opening       string   // Dify's opening_statement, a new conversation's greeting.
	FileLimit     int      // How many files one run may send (file-list max_length); 0 when the form does not say.
	// Fixed are the values sent for the form's other fields: DIFY_INPUTS, else the field's default.
	Fixed map[string]any
	// Missing names a required field that gets no value (neither set nor defaulted): runs would fail on it.
	Missing *dify.InputField
	// Problems are settings that do not fit the start form. The pipeline still uses them as set; doctor reports them.
	Problems []Check
}

// Summary names where a message's parts go, in the words doctor prints and the run step records.
func (a *App) Summary() string {
	mode := "workflow"
	if a.Chat {
		mode = "chat"
	}
	image := "sys.files"
	if a.ImageInput != "" {
		image = a.ImageInput
	}
	s := fmt.Sprintf("%s app; images → %s", mode, image)
	if !a.Chat {
		s += "; text → " + a.TextInput
	}
	return s
}

// Discover applies the settings to the app, asking Dify where they say auto.
func Discover(ctx context.Context, src AppSource, s AppSettings) (*App, error) {
	a := &App{Chat: s.Mode == "chat"}
	if s.Mode == "" || s.Mode == "auto" {
		info, err := src.Info(ctx)
		if err != nil {
			return nil, err
		}
		a.Mode, a.Chat = info.Mode, ChatMode(info.Mode)
	}
	params, err := src.Parameters(ctx)
	var ae *dify.APIError
	switch {
	case errors.As(err, &ae) && ae.Code == "app_unavailable":
		// Dify answers this for a workflow that was never published as well as for a broken app; the run itself
		// says which ("Workflow not published"), so carry on with the defaults and let it.
		params = &dify.Parameters{}
	case err != nil:
		return nil, err
	default:
		a.Form = params.UserInputForm
	}
	form := params.UserInputForm
	a.ImageLimit = params.SystemParameters.ImageLimitBytes()
	a.Suggested, a.Opening = params.SuggestedQuestions, params.OpeningStatement

	a.ImageInput = s.ImageInput
	switch a.ImageInput {
	case "", "auto":
		a.ImageInput = ""
		if i := slices.IndexFunc(form, dify.InputField.AcceptsImages); i >= 0 {
			a.ImageInput = form[i].Variable
		}
	case "files":
		a.ImageInput = ""
	default:
		a.checkSetting("DIFY_IMAGE_INPUT", a.ImageInput, true)
	}
	if i := slices.IndexFunc(form, func(f dify.InputField) bool { return f.Variable == a.ImageInput }); i >= 0 {
		a.ImageList = form[i].Type == "file-list"
	}

	a.TextInput = s.TextInput
	if a.TextInput == "" || a.TextInput == "auto" {
		a.TextInput = "query"
		if i := slices.IndexFunc(form, isText); i >= 0 {
			a.TextInput = form[i].Variable
		}
	} else if !a.Chat {
		a.checkSetting("DIFY_TEXT_INPUT", a.TextInput, false)
	}
	a.FileLimit = int(params.SystemParameters.WorkflowFileUploadLimit)
	for _, f := range form {
		switch f.Variable {
		case a.TextInput:
			a.TextRequired = f.Required && !a.Chat
			a.TextDefault, _ = f.DefaultText()
		case a.ImageInput:
			a.ImageRequired = f.Required
			if n := f.MaxFiles(); n > 0 && (a.FileLimit == 0 || n < a.FileLimit) {
				a.FileLimit = n
			}
		}
	}
	a.fixInputs(s.Inputs)
	return a, nil
}

// ChatMode reports whether an app of Dify's mode answers on /chat-messages: chat, agent-chat (Agent),
// advanced-chat (Chatflow) and agent (Dify 1.16's New Agent).
func ChatMode(mode string) bool {
	switch mode {
	case "chat", "agent-chat", "advanced-chat", "agent":
		return true
	}
	return false
}

func isText(f dify.InputField) bool { return f.Type == "text-input" || f.Type == "paragraph" }

// checkSetting notes a start variable named in env that the form lacks or that cannot take images.
// Without a form (unpublished) there is nothing to check against.
func (a *App) checkSetting(env, value string, image bool) {
	if a.Form == nil {
		return
	}
	i := slices.IndexFunc(a.Form, func(f dify.InputField) bool { return f.Variable == value })
	switch {
	case i < 0:
		a.Problems = append(a.Problems, Check{Name: env, Detail: fmt.Sprintf("%q is not a variable of the workflow's Start node", value),
			Fixes: []string{fmt.Sprintf("use one of the variables listed above, or set %s=auto", env)}})
	case image && !a.Form[i].AcceptsImages():
		a.Problems = append(a.Problems, Check{Name: env, Detail: fmt.Sprintf("%q is a %s variable that does not accept images", value, a.Form[i].Type),
			Fixes: []string{"in the Start node, make it a file variable that allows images, or choose another variable"}})
	}
}

// fixInputs sets the values of the form's other fields: DIFY_INPUTS, checked against the form, else each field's
// default. A required field left without a value is noted, for doctor and for the run's diagnosis.
func (a *App) fixInputs(set map[string]any) {
	own := func(v string) bool { return (v == a.TextInput && !a.Chat) || (v == a.ImageInput && v != "") }
	a.Fixed = map[string]any{}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		i := slices.IndexFunc(a.Form, func(f dify.InputField) bool { return f.Variable == k })
		switch {
		case a.Form == nil:
			a.Fixed[k] = set[k] // Nothing to check against: send it as set.
		case i < 0:
			a.Problems = append(a.Problems, Check{Name: "DIFY_INPUTS", Detail: fmt.Sprintf("%q is not a variable of the start form (%s)", k, a.FormSummary()),
				Fixes: []string{fmt.Sprintf("remove %q from DIFY_INPUTS, or add it to the workflow's Start node", k)}})
		case own(k):
			a.Problems = append(a.Problems, Check{Name: "DIFY_INPUTS", Detail: fmt.Sprintf("%q is where difybot puts the person's message; a fixed value would replace it", k),
				Fixes: []string{fmt.Sprintf("remove %q from DIFY_INPUTS", k)}})
		default:
			if err := a.Form[i].Validate(set[k]); err != nil {
				fix := "correct the value in DIFY_INPUTS"
				if len(a.Form[i].Options) > 0 {
					fix = "use one of the options: " + strings.Join(a.Form[i].Options, ", ")
				}
				a.Problems = append(a.Problems, Check{Name: "DIFY_INPUTS", Detail: err.Error(), Fixes: []string{fix}})
				continue
			}
			a.Fixed[k] = set[k]
		}
	}
	for _, f := range a.Form {
		if own(f.Variable) || f.IsFile() {
			continue
		}
		if _, ok := a.Fixed[f.Variable]; ok {
			continue
		}
		if _, ok := f.DefaultText(); ok || (f.Type == dify.FieldCheckbox && f.Default != nil) {
			a.Fixed[f.Variable] = f.Default
			continue
		}
		if f.Required && a.Missing == nil {
			f := f
			a.Missing = &f
			a.Problems = append(a.Problems, Check{Name: "Dify inputs", Detail: fmt.Sprintf("the start form requires %q (%s) and difybot has no value for it", f.Variable, f.Type),
				Fixes: []string{fmt.Sprintf(`set DIFY_INPUTS={"%s": …}, or give the field a default in the Start node, or make it optional`, f.Variable)}})
		}
	}
}

// FormSummary lists the start form's variables and types, for doctor.
func (a *App) FormSummary() string {
	var names []string
	for _, f := range a.Form {
		names = append(names, fmt.Sprintf("%s (%s)", f.Variable, f.Type))
	}
	if len(names) == 0 {
		return "no variables"
	}
	return strings.Join(names, ", ")
}

// inputs builds a run's inputs and sys.files for a workflow app.
func (a *App) inputs(text string, files []dify.FileRef) (map[string]any, []dify.FileRef) {
	in := map[string]any{}
	for k, v := range a.Fixed {
		in[k] = v
	}
	if text != "" && !a.Chat {
		in[a.TextInput] = text
	}
	if len(files) == 0 {
		return in, nil
	}
	switch {
	case a.ImageInput == "":
		return in, files
	case a.ImageList:
		in[a.ImageInput] = files
	default:
		in[a.ImageInput] = files[0]
	}
	return in, nil
}

// appCache discovers the app once per appTTL. Callers that arrive while a discovery runs wait for it (or for their
// own context), so one slow /parameters costs one call, and no lock is held across it. Its zero value is ready.
type appCache struct {
	mu   sync.Mutex
	got  *App
	at   time.Time
	call *appCall // The discovery in flight, if any.
	gen  int      // Counts forget calls, so a discovery that started before one is not cached.
}

type appCall struct {
	done chan struct{} // Closed when app and err are set.
	app  *App
	err  error
}

// forget drops the cached app: the next get discovers it again. A discovery in flight still answers the callers
// already waiting for it, but is neither joined nor cached.
func (c *appCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got, c.call, c.gen = nil, nil, c.gen+1
}

// get returns the cached app, or waits for a discovery, starting one if none runs. The discovery runs in its own
// goroutine, bounded by discoverTimeout, so a caller that gives up does not cancel it for the others.
func (c *appCache) get(ctx context.Context, now func() time.Time, discover func(context.Context) (*App, error)) (*App, error) {
	c.mu.Lock()
	if c.got != nil && now().Sub(c.at) < appTTL {
		a := c.got
		c.mu.Unlock()
		return a, nil
	}
	call := c.call
	if call == nil {
		call = &appCall{done: make(chan struct{})}
		c.call = call
		gen := c.gen
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discoverTimeout)
		go func() {
			defer cancel()
			a, err := discover(dctx)
			c.mu.Lock()
			call.app, call.err = a, err
			if err == nil && gen == c.gen {
				c.got, c.at = a, now()
			}
			if c.call == call {
				c.call = nil
			}
			c.mu.Unlock()
			close(call.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.app, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Greeting is what a new conversation opens with (a Slack assistant thread): Dify's opening statement and its
// suggested questions.
type Greeting struct {
	Text    string
	Prompts []string
}

// Greeting reads the default app's opening statement and suggested questions.
func (b *Bot) Greeting(ctx context.Context) (Greeting, error) {
	a, err := b.discover(ctx, b.apps[b.cfg.Routes.Default])
	if err != nil {
		return Greeting{}, err
	}
	return Greeting{Text: a.Opening, Prompts: a.Suggested}, nil
}
