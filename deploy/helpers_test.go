package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// root is the repository root, where the deployment files live.
const root = ".."

func TestMain(m *testing.M) {
	code := m.Run()
	if image.dir != "" {
		os.RemoveAll(image.dir)
	}
	os.Exit(code)
}

func readRepoFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// instruction is one Dockerfile instruction, with continuation lines joined.
type instruction struct {
	Cmd  string // Upper case: FROM, RUN, …
	Args string
	Line int
}

// stage is one FROM and what follows it.
type stage struct {
	Name   string // The AS name, or "".
	Base   string
	Instrs []instruction
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.Instrs {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// env is the stage's ENV settings, in the KEY=VALUE form the Dockerfile uses.
func (s stage) env(t testing.TB) map[string]string {
	t.Helper()
	env := map[string]string{}
	// An ARG with a default is in RUN's environment as well, as docker build sets it.
	for _, in := range s.all("ARG") {
		for _, kv := range strings.Fields(in.Args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	for _, in := range s.all("ENV") {
		for _, kv := range strings.Fields(in.Args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("Dockerfile:%d: ENV %q: write KEY=VALUE", in.Line, in.Args)
			}
			env[k] = strings.Trim(v, `"`)
		}
	}
	return env
}

// parseDockerfile reads the repository's Dockerfile into stages. It knows what this Dockerfile uses: comments,
// backslash continuations (comment lines inside them are dropped, as Docker does), FROM … AS name.
func parseDockerfile(t testing.TB) []stage {
	t.Helper()
	var stages []stage
	var cur *instruction
	finish := func() {
		if cur == nil {
			return
		}
		if cur.Cmd == "FROM" {
			f := strings.Fields(cur.Args)
			var base, name string
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					name = f[i+1]
					i++
				default:
					base = f[i]
				}
			}
			stages = append(stages, stage{Name: name, Base: base})
		} else {
			if len(stages) == 0 {
				t.Fatalf("Dockerfile:%d: %s before FROM", cur.Line, cur.Cmd)
			}
			stages[len(stages)-1].Instrs = append(stages[len(stages)-1].Instrs, *cur)
		}
		cur = nil
	}
	sc := bufio.NewScanner(strings.NewReader(readRepoFile(t, "Dockerfile")))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		more := strings.HasSuffix(line, `\`)
		line = strings.TrimSpace(strings.TrimSuffix(line, `\`))
		if cur == nil {
			cmd, args, _ := strings.Cut(line, " ")
			cur = &instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: n}
		} else {
			cur.Args += " " + line
		}
		if !more {
			finish()
		}
	}
	finish()
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages; want a build stage and a final one", len(stages))
	}
	return stages
}

// runCommands are the shell commands of a RUN instruction: its --mount and other flags dropped, split at &&.
func runCommands(in instruction) []string {
	args := in.Args
	for strings.HasPrefix(args, "--") {
		_, rest, _ := strings.Cut(args, " ")
		args = strings.TrimSpace(rest)
	}
	var cmds []string
	for c := range strings.SplitSeq(args, "&&") {
		cmds = append(cmds, strings.TrimSpace(c))
	}
	return cmds
}

// ignoreRule is one line of .dockerignore.
type ignoreRule struct {
	pattern string
	negate  bool
}

// dockerignore reads the rules of .dockerignore. Like Docker: a leading / is dropped, ** matches any number
// of directories, a pattern that matches a directory excludes everything below it, and the last matching rule
// wins (a ! rule includes again).
func dockerignore(t testing.TB) []ignoreRule {
	t.Helper()
	var rules []ignoreRule
	for line := range strings.SplitSeq(readRepoFile(t, ".dockerignore"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if p, ok := strings.CutPrefix(line, "!"); ok {
			r.negate, line = true, p
		}
		r.pattern = path.Clean(strings.TrimPrefix(line, "/"))
		if _, err := path.Match(r.pattern, ""); err != nil {
			t.Fatalf(".dockerignore: %q: %v", line, err)
		}
		rules = append(rules, r)
	}
	return rules
}

func excluded(rules []ignoreRule, rel string) bool {
	out := false
	for _, r := range rules {
		for p := rel; ; {
			if globMatch(r.pattern, p) {
				out = !r.negate
				break
			}
			i := strings.LastIndex(p, "/")
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
	return out
}

func globMatch(pattern, name string) bool {
	if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
		for {
			if globMatch(rest, name) {
				return true
			}
			i := strings.Index(name, "/")
			if i < 0 {
				return false
			}
			name = name[i+1:]
		}
	}
	ok, _ := path.Match(pattern, name)
	return ok
}

// buildContext copies the repository into dir as docker build sees it: without what .dockerignore excludes.
func buildContext(t testing.TB, dir string) {
	t.Helper()
	rules := dockerignore(t)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		if excluded(rules, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// image holds the binaries built once per test run by the Dockerfile's own build commands.
var image struct {
	once sync.Once
	dir  string // Removed by TestMain.
	bin  string // dir/out: difybot and difysim.
	ctx  string // dir/context: the build context.
	cmds []string
	err  error
}

// imageBinaries runs the Dockerfile's go build commands, as written, in a copy of the build context, with /out/
// pointing to a temporary directory, and returns that directory. The directories are readable by every user,
// so that the image's user can run the binaries.
func imageBinaries(t testing.TB) string {
	t.Helper()
	image.once.Do(func() {
		// Stays set if buildImage ends the test that runs it (t.Fatal) before returning.
		image.err = errors.New("the image build did not finish: see the first test that failed")
		image.err = buildImage(t)
	})
	if image.err != nil {
		t.Fatal(image.err)
	}
	return image.bin
}

func buildImage(t testing.TB) error {
	t.Helper()
	stages := parseDockerfile(t)
	var build *stage
	for i := range stages {
		if stages[i].Name == "build" {
			build = &stages[i]
		}
	}
	if build == nil {
		return fmt.Errorf("Dockerfile has no stage named build")
	}
	dir, err := os.MkdirTemp("", "difybot-image-*")
	if err != nil {
		return err
	}
	image.dir, image.bin, image.ctx = dir, filepath.Join(dir, "out"), filepath.Join(dir, "context")
	for _, d := range []string{dir, image.bin, image.ctx} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	buildContext(t, image.ctx)

	// The build stage's environment: ENV lines, and the platform arguments BuildKit fills in.
	env := os.Environ()
	for k, v := range build.env(t) {
		env = append(env, k+"="+v)
	}
	env = append(env, "TARGETOS="+goEnv(t, "GOOS"), "TARGETARCH="+goEnv(t, "GOARCH"))
	for _, in := range build.all("RUN") {
		for _, c := range runCommands(in) {
			if !strings.Contains(c, "go build") {
				continue
			}
			c = strings.ReplaceAll(c, "/out/", image.bin+"/")
			image.cmds = append(image.cmds, c)
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			cmd := exec.CommandContext(ctx, "sh", "-c", c)
			cmd.Dir, cmd.Env = image.ctx, env
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				return fmt.Errorf("Dockerfile:%d: %s: %v\n%s", in.Line, c, err, out)
			}
		}
	}
	if len(image.cmds) == 0 {
		return fmt.Errorf("the build stage has no go build command")
	}
	return nil
}

func goEnv(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// client talks to loopback only: no proxy from the environment, no redirects followed, every request bounded.
var client = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, ExpectContinueTimeout: 5 * time.Second},
	Timeout:   20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

type answer struct {
	status int
	body   string
	header http.Header
	took   time.Duration
}

func do(t testing.TB, method, url string, body []byte, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return answer{status: res.StatusCode, body: string(b), header: res.Header, took: time.Since(start)}
}

// process is a program the test started; it is killed at cleanup, and its output is shown when the test fails.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t testing.TB, cmd *exec.Cmd, name string) *process {
	t.Helper()
	p := &process{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.out)
		}
	})
	return p
}

// waitOutput waits at most d for the process to print substr (its output arrives through a pipe, a little
// after the process wrote it).
func (p *process) waitOutput(substr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(p.out.String(), substr) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// stop sends SIGTERM, as docker stop does, and waits at most d for the process to end; then it kills it.
func (p *process) stop(t testing.TB, d time.Duration) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("did not stop within %s of SIGTERM", d)
	}
}

// waitHTTP polls url until it answers want, for at most d; p, when not nil, is the process that must answer.
func waitHTTP(t testing.TB, p *process, url string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		if p != nil {
			select {
			case <-p.done:
				t.Fatalf("the process ended before %s answered %d: %v\n%s", url, want, p.err, p.out)
			default:
			}
		}
		res, err := client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == want {
				return
			}
			last = res.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within %s (last: %s)", url, want, d, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
