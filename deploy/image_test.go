package deploy_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

// finalStage is the stage the image is made of.
func finalStage(t testing.TB) stage {
	t.Helper()
	stages := parseDockerfile(t)
	return stages[len(stages)-1]
}

// last is the argument of the last cmd instruction of the stage, the one that counts.
func last(t testing.TB, s stage, cmd string) instruction {
	t.Helper()
	ins := s.all(cmd)
	if len(ins) == 0 {
		t.Fatalf("the final stage of the Dockerfile has no %s", cmd)
	}
	return ins[len(ins)-1]
}

// imageUser is the final stage's USER as numbers, which Kubernetes' runAsNonRoot can check.
func imageUser(t testing.TB) (uid, gid uint32) {
	t.Helper()
	user := last(t, finalStage(t), "USER").Args
	u, g, ok := strings.Cut(user, ":")
	if !ok {
		g = u
	}
	uu, err1 := strconv.ParseUint(u, 10, 32)
	gg, err2 := strconv.ParseUint(g, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("USER %s: want numeric UID:GID", user)
	}
	return uint32(uu), uint32(gg)
}

func TestDockerfileFinalStage(t *testing.T) {
	final := finalStage(t)
	if strings.Contains(final.Base, "golang") || final.Name == "build" {
		t.Errorf("final stage FROM %s: want a small runtime image, not the Go toolchain", final.Base)
	}
	if uid, _ := imageUser(t); uid == 0 {
		t.Errorf("USER %s: the image must not run as root", last(t, final, "USER").Args)
	}

	env := final.env(t)
	if env["DATA_DIR"] != "/data" {
		t.Errorf("ENV DATA_DIR=%q, want /data (the volume)", env["DATA_DIR"])
	}
	if vol := last(t, final, "VOLUME").Args; !slices.Contains(strings.Fields(strings.NewReplacer("[", " ", "]", " ", `"`, " ", ",", " ").Replace(vol)), "/data") {
		t.Errorf("VOLUME %s: want /data", vol)
	}
	port := strings.TrimPrefix(env["HTTP_ADDR"], ":")
	if env["HTTP_ADDR"] != ":8080" {
		t.Errorf("ENV HTTP_ADDR=%q, want :8080 (Caddyfile and docker-compose.yml use difybot:8080)", env["HTTP_ADDR"])
	}
	if expose := last(t, final, "EXPOSE").Args; expose != port && expose != port+"/tcp" {
		t.Errorf("EXPOSE %s, but HTTP_ADDR listens on %s", expose, port)
	}

	hc := last(t, final, "HEALTHCHECK").Args
	opts, cmd, ok := strings.Cut(hc, "CMD ")
	if !ok || !strings.Contains(cmd, "/healthz") {
		t.Errorf("HEALTHCHECK %s: want CMD … /healthz", hc)
	}
	for _, o := range []string{"--interval=", "--timeout="} {
		if !strings.Contains(opts, o) {
			t.Errorf("HEALTHCHECK has no %s…", o)
		}
	}

	var entry, cmdArgs []string
	json.Unmarshal([]byte(last(t, final, "ENTRYPOINT").Args), &entry)
	json.Unmarshal([]byte(last(t, final, "CMD").Args), &cmdArgs)
	if !slices.Equal(entry, []string{"difybot"}) || !slices.Equal(cmdArgs, []string{"serve"}) {
		t.Errorf(`ENTRYPOINT %v CMD %v, want ["difybot"] ["serve"] (exec form, so difybot gets SIGTERM itself)`, entry, cmdArgs)
	}

	// What the final stage copies from the build stage is what the build commands write.
	var built []string
	for _, s := range parseDockerfile(t) {
		if s.Name != "build" {
			continue
		}
		if want := "golang:" + goModVersion(t); s.Base != want {
			t.Errorf("build stage FROM %s, want %s (go.mod's go version)", s.Base, want)
		}
		for _, in := range s.all("RUN") {
			for _, c := range runCommands(in) {
				if !strings.Contains(c, "go build") {
					continue
				}
				for _, w := range []string{"CGO_ENABLED=0 ", "-trimpath"} {
					if !strings.Contains(c, w) {
						t.Errorf("Dockerfile:%d: %q lacks %s", in.Line, c, w)
					}
				}
				// Stripped (TestImageBuildIsStatic checks the result); difybot's flags also set its version.
				if !regexp.MustCompile(`-ldflags=['"]-s -w[ '"]`).MatchString(c) {
					t.Errorf("Dockerfile:%d: %q lacks -ldflags with -s -w", in.Line, c)
				}
				if m := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(c); m != nil {
					built = append(built, m[1])
				}
			}
		}
	}
	if !slices.Contains(built, "/out/difybot") || !slices.Contains(built, "/out/difysim") {
		t.Errorf("the build stage writes %v; want /out/difybot and /out/difysim", built)
	}
	for _, in := range final.all("COPY") {
		f := strings.Fields(in.Args)
		if !slices.Contains(f, "--from=build") {
			continue
		}
		for _, src := range f[:len(f)-1] {
			if !strings.HasPrefix(src, "--") && !slices.Contains(built, src) {
				t.Errorf("Dockerfile:%d: COPY %s, which no go build command writes", in.Line, src)
			}
		}
	}
}

// goModVersion is go.mod's go directive as major.minor, the golang image tag that builds it.
func goModVersion(t testing.TB) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return m[1]
}

func TestDockerignoreKeepsSecretsAndDataOut(t *testing.T) {
	rules := dockerignore(t)
	for _, p := range []string{".env", ".env.production", ".git/config", "data/difybot.db", "tmp/x", "difybot", "difysim",
		"cmd/difybot/difybot.test", "docs/operations.md", "deploy/image_test.go"} {
		if !excluded(rules, p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/difybot/main.go", "cmd/difysim/main.go", "bot/admin/admin.html",
		"dify/difytest/difytest.go"} {
		if excluded(rules, p) {
			t.Errorf(".dockerignore keeps %s, which the build needs, out of the build context", p)
		}
	}
}

// TestImageBuildIsStatic runs the Dockerfile's go build commands in a copy of the build context and checks
// the binaries are static (they run on any base image) and stripped.
func TestImageBuildIsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds difybot and difysim")
	}
	bin := imageBinaries(t)
	t.Logf("built with: %s", strings.Join(image.cmds, "; "))
	for _, name := range []string{"difybot", "difysim"} {
		p := filepath.Join(bin, name)
		f, err := elf.Open(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
				t.Errorf("%s has a %v program header: it is dynamically linked", name, prog.Type)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v", name, libs)
		}
		if f.Section(".symtab") != nil || f.Section(".debug_info") != nil {
			t.Errorf("%s has a symbol table or DWARF: -ldflags='-s -w' did not apply", name)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(image.ctx)) {
			t.Errorf("%s contains the build directory %s: -trimpath did not apply", name, image.ctx)
		}
	}
	// The context has no .git, so the version is the build argument's (default "dev"), never "(devel)".
	out, err := exec.Command(filepath.Join(bin, "difybot"), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "difybot dev (") {
		t.Errorf("the image's difybot version = %q, %v; want the VERSION build argument", out, err)
	}
}

// TestImageRunsAsItsUser starts difybot serve the way the image does (ENTRYPOINT, CMD, ENV) as the image's
// USER, with DATA_DIR owned by that user as /data is in the image, and checks it serves /healthz, creates its
// database there, passes the image's HEALTHCHECK command and stops cleanly on SIGTERM.
func TestImageRunsAsItsUser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs difybot")
	}
	bin := imageBinaries(t)
	final := finalStage(t)
	uid, gid := imageUser(t)
	asRoot := os.Geteuid() == 0
	if !asRoot {
		// Not root: the test cannot switch users, but the process is then non-root anyway.
		uid, gid = uint32(os.Geteuid()), uint32(os.Getegid())
	}

	sim := difytest.NewServer(difytest.Options{})
	t.Cleanup(sim.Close)
	data, err := os.MkdirTemp("", "difybot-data-*") // Under /tmp, so the image's user can reach it.
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	if err := os.Chown(data, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	for k, v := range final.env(t) {
		env = append(env, k+"="+v)
	}
	// The image's own values, moved to where this test can run them: the volume path and a loopback port.
	env = append(env, "DATA_DIR="+data, "HTTP_ADDR="+addr, "DIFY_BASE_URL="+sim.URL(), "DIFY_API_KEY=app-test")

	var entry, args []string
	json.Unmarshal([]byte(last(t, final, "ENTRYPOINT").Args), &entry)
	json.Unmarshal([]byte(last(t, final, "CMD").Args), &args)
	cmd := exec.Command(filepath.Join(bin, entry[0]), append(entry[1:], args...)...)
	cmd.Env, cmd.Dir = env, data
	if asRoot {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	}
	p := start(t, cmd, "difybot serve")
	waitHTTP(t, p, "http://"+addr+"/healthz", 200, 60*time.Second)

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)\s+(\d+)`).FindStringSubmatch(string(status))
	if m == nil || m[1] != fmt.Sprint(uid) || m[2] != fmt.Sprint(uid) || uid == 0 {
		t.Errorf("difybot runs with %q; want UID %d, not root", m, uid)
	} else {
		t.Logf("difybot serve runs as UID %s, GID %d", m[1], gid)
	}
	fi, err := os.Stat(filepath.Join(data, "difybot.db"))
	if err != nil {
		t.Fatalf("no SQLite database in DATA_DIR: %v", err)
	}
	if owner := fi.Sys().(*syscall.Stat_t).Uid; owner != uid {
		t.Errorf("difybot.db is owned by UID %d, want %d", owner, uid)
	}

	healthcheck := imageHealthcheck(t, final, addr)
	if healthcheck != nil {
		if out, err := healthcheck().CombinedOutput(); err != nil {
			t.Errorf("the image's HEALTHCHECK fails on a running difybot: %v\n%s", err, out)
		} else {
			t.Log("the image's HEALTHCHECK command (BusyBox sh and wget) passes")
		}
	}
	if err := p.stop(t, 40*time.Second); err != nil {
		t.Errorf("difybot after SIGTERM: %v", err)
	}
	if healthcheck != nil {
		if err := healthcheck().Run(); err == nil {
			t.Error("the image's HEALTHCHECK passes with difybot stopped")
		}
	}
}

// imageHealthcheck returns the HEALTHCHECK command as Docker runs it (/bin/sh -c in the image), with BusyBox's
// sh and wget as on Alpine, for a difybot at addr; nil when BusyBox is not installed.
func imageHealthcheck(t testing.TB, final stage, addr string) func() *exec.Cmd {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Log("busybox is not installed (apt-get install -y busybox): the image's HEALTHCHECK command is not run")
		return nil
	}
	_, shell, _ := strings.Cut(last(t, final, "HEALTHCHECK").Args, "CMD ")
	dir := t.TempDir()
	for _, applet := range []string{"sh", "wget"} {
		if err := os.Symlink(busybox, filepath.Join(dir, applet)); err != nil {
			t.Fatal(err)
		}
	}
	return func() *exec.Cmd {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		cmd := exec.CommandContext(ctx, filepath.Join(dir, "sh"), "-c", shell)
		cmd.Env = []string{"PATH=" + dir, "HTTP_ADDR=" + addr}
		return cmd
	}
}
