package handlers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecampus/wecampus/wecom/callback"
)

// TestLoadCallback is the side-by-side load figure of the callback's hot path (issue 7): the
// encrypted HELP click → encrypted reply over real HTTP on loopback, served by the whole engine
// and by bareCallback, in turns, with wrk (64 connections) as the client. It reports requests per
// second, wrk's p99 latency and the server's CPU time per request (this process's user + system
// time over the requests it served). It runs only with WECAMPUS_LOAD_CALLBACK=1 and wrk on the
// PATH. For the setup (server on one core with GOMAXPROCS=1, wrk on the other), build
// the test binary and pin it; the test pins wrk to core 1 when taskset is there:
//
//	go test -c -o /tmp/handlers.test ./handlers/
//	cd handlers && WECAMPUS_LOAD_CALLBACK=1 GOMAXPROCS=1 taskset -c 0 /tmp/handlers.test -test.run TestLoadCallback -test.v
//
// WECAMPUS_LOAD_DURATION (default 10s) is the length of one wrk run; WECAMPUS_LOAD_ROUNDS
// (default 2) the number of bare/engine turns.
func TestLoadCallback(t *testing.T) {
	if os.Getenv("WECAMPUS_LOAD_CALLBACK") != "1" {
		t.Skip("set WECAMPUS_LOAD_CALLBACK=1 (and install wrk) to run the callback load test")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk is not installed")
	}
	duration := 10 * time.Second
	if v := os.Getenv("WECAMPUS_LOAD_DURATION"); v != "" {
		if duration, err = time.ParseDuration(v); err != nil || duration < time.Second || duration > time.Minute {
			t.Fatalf("WECAMPUS_LOAD_DURATION=%q: want 1s to 1m", v)
		}
	}
	rounds := envInt(t, "WECAMPUS_LOAD_ROUNDS", 2)

	// serve's log level, written nowhere: the figure is about the service, not the log sink.
	e := newEnv(t, withLogOutput(io.Discard), withLogLevel(slog.LevelInfo))
	target, body := clickHelpDelivery(t, e)
	codec := mustCodec(t, testCorpID, testAppToken, testAppKey, callback.WithMaxAge(5*time.Minute))
	script := filepath.Join(t.TempDir(), "click.lua")
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.path = %q\nwrk.headers[\"Content-Type\"] = \"text/xml\"\nwrk.body = [==[%s]==]\n", target, body)
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Logf("GOMAXPROCS=%d, %s per run, 64 connections", runtime.GOMAXPROCS(0), duration)
	for round := 1; round <= rounds; round++ {
		for _, side := range []struct {
			name string
			h    http.Handler
		}{{"bare", bareCallback(codec, e.svc)}, {"engine", e.handler}} {
			r := loadRun(t, wrk, script, side.h, duration)
			t.Logf("round %d %-6s %8.0f req/s  p99 %-8s %5.1f µs CPU/req  (%d requests, %d errors)",
				round, side.name, r.rps, r.p99, r.cpuPerReq, r.served, r.errors)
		}
	}
}

type loadResult struct {
	rps       float64
	p99       string
	cpuPerReq float64 // µs
	served    int64
	errors    int64 // responses other than 200 with a body
}

// loadRun serves h on a loopback port with serve's timeouts, runs wrk against it and reports.
func loadRun(t *testing.T, wrk, script string, h http.Handler, d time.Duration) loadResult {
	t.Helper()
	var served, failed atomic.Int64
	counting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		served.Add(1)
		if cw.status != http.StatusOK || cw.n == 0 {
			failed.Add(1)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: counting, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	args := []string{"-t1", "-c64", "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", "-s", script, "http://" + ln.Addr().String()}
	cmd := exec.Command(wrk, args...)
	if taskset, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() > 1 {
		cmd = exec.Command(taskset, append([]string{"-c", "1", wrk}, args...)...)
	}
	cpu0 := processCPU()
	out, err := cmd.CombinedOutput()
	cpu := processCPU() - cpu0
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	var r loadResult
	r.served, r.errors = served.Load(), failed.Load()
	if m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := regexp.MustCompile(`(?m)^\s+99%\s+(\S+)`).FindSubmatch(out); m != nil {
		r.p99 = string(m[1])
	}
	if r.rps == 0 || r.p99 == "" {
		t.Fatalf("cannot read wrk's output:\n%s", out)
	}
	if r.served > 0 && cpu0 >= 0 {
		r.cpuPerReq = float64(cpu.Microseconds()) / float64(r.served)
	}
	if r.errors > 0 {
		t.Errorf("%d of %d requests did not get a 200 reply", r.errors, r.served)
	}
	return r
}

// countingWriter remembers the status and the body size of a response.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int
}

func (w *countingWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += n
	return n, err
}
