package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// AdminToken is the ADMIN_TOKEN the harness gives difybot.
const AdminToken = "difyload-admin-token-0123456789abcdef"

// Build compiles cmd/difybot into dir and returns the binary's path. It must run inside the module.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "difybot")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/difybot/difybot/cmd/difybot").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build difybot: %v\n%s", err, out)
	}
	return bin, nil
}

var (
	builtOnce sync.Once
	built     string
	builtErr  error
)

// BuildOnce builds cmd/difybot into a temporary directory the first time it is called in a process and returns
// the same binary after that: test suites that run real processes share one build.
func BuildOnce(ctx context.Context) (string, error) {
	builtOnce.Do(func() {
		dir, err := os.MkdirTemp("", "difybot-bin-*")
		if err != nil {
			builtErr = err
			return
		}
		built, builtErr = Build(ctx, dir)
	})
	return built, builtErr
}

// FreeAddr returns a free 127.0.0.1 port.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Serve is `difybot serve` as a child process. Restart starts it again with the same environment, address
// and data, as a supervisor would after a crash.
type Serve struct {
	Bin  string
	Env  map[string]string // Added to a minimal environment; HTTP_ADDR is set by the harness.
	Addr string
	Logs string // The file stdout and stderr go to (appended across restarts).

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartServe starts bin serve on a free port with env and waits until /healthz answers.
func StartServe(ctx context.Context, bin string, env map[string]string, logs string) (*Serve, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	s := &Serve{Bin: bin, Env: env, Addr: addr, Logs: logs}
	return s, s.Restart(ctx)
}

// URL is the base URL of the process.
func (s *Serve) URL() string { return "http://" + s.Addr }

// PID is the running process's id.
func (s *Serve) PID() int { return s.cmd.Process.Pid }

// Restart starts the process (again) and waits for /healthz. The previous one must have exited.
func (s *Serve) Restart(ctx context.Context) error {
	logf, err := os.OpenFile(s.Logs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.Bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir(),
		"HTTP_ADDR=" + s.Addr, "ADMIN_TOKEN=" + AdminToken}
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	s.cmd, s.done, s.err = cmd, make(chan struct{}), nil
	go func() {
		s.err = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("difybot serve exited at start: %v\n%s", s.err, s.Tail(4000))
		default:
		}
		res, err := http.Get(s.URL() + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Kill()
			return fmt.Errorf("difybot serve did not become healthy in 30 s: %v\n%s", err, s.Tail(4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the process with SIGKILL and waits for it: a crash.
func (s *Serve) Kill() error {
	if s.cmd == nil {
		return nil
	}
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-s.done
	return nil
}

// Stop ends the process with SIGTERM and waits up to timeout for its graceful shutdown, then kills it.
func (s *Serve) Stop(timeout time.Duration) error {
	if s.cmd == nil {
		return nil
	}
	select {
	case <-s.done:
		return s.exitErr()
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.exitErr()
	case <-time.After(timeout):
		s.Kill()
		return fmt.Errorf("difybot serve did not stop within %s of SIGTERM; killed", timeout)
	}
}

func (s *Serve) exitErr() error {
	var ee *exec.ExitError
	if errors.As(s.err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
		return nil // Killed by us earlier.
	}
	return s.err
}

// Tail returns the last n bytes of the logs.
func (s *Serve) Tail(n int64) string {
	f, err := os.Open(s.Logs)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(0, st.Size()-n)
	buf := make([]byte, st.Size()-off)
	f.ReadAt(buf, off)
	return string(buf)
}

// Mem is a process's memory as /proc/PID/status reports it.
type Mem struct {
	RSS, HWM int64 // VmRSS and VmHWM (peak RSS), in bytes.
}

// ReadMem reads VmRSS and VmHWM of pid (Linux only).
func ReadMem(pid int) (Mem, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	var m Mem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = n << 10
		case "VmHWM":
			m.HWM = n << 10
		}
	}
	return m, sc.Err()
}

// ReadCPU returns the user plus system CPU time a process has used, from /proc/PID/stat (clock ticks of 10 ms).
func ReadCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis are plain.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("loadtest: /proc/%d/stat: unexpected format", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// Gauge reads one unlabelled gauge from a Prometheus text page.
func Gauge(url, name string) (float64, bool) {
	res, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}
