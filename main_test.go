package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/cas/castest"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

const testCorpID = "ww0123456789abcdef"

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running serve.
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

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	r := result{code, out.String(), errOut.String()}
	assertNoSecrets(t, r.stdout+r.stderr)
	return r
}

func assertNoSecrets(t *testing.T, output string) {
	t.Helper()
	for _, s := range testSecrets {
		if strings.Contains(output, s) {
			t.Errorf("output reveals a secret (%.6s…):\n%s", s, output)
		}
	}
}

// simulated holds a config pointing at in-process WeCom and CAS simulators.
type simulated struct {
	tree  map[string]any
	wecom *wecomtest.Server
	cas   *castest.Server
}

func newSimulated(t *testing.T) *simulated {
	t.Helper()
	wc := wecomtest.New(testCorpID, wecomtest.WithAppSecret(testAppSecret), wecomtest.WithContactsSecret(testContactsSecret))
	t.Cleanup(wc.Close)
	cs := castest.New()
	t.Cleanup(cs.Close)
	tree := baseConfig(t)
	setKey(t, tree, "wecom.corp_id", testCorpID)
	setKey(t, tree, "wecom.api_base", wc.URL())
	setKey(t, tree, "cas.base_url", cs.URL())
	return &simulated{tree: tree, wecom: wc, cas: cs}
}

func (s *simulated) path(t *testing.T) string { return writeConfig(t, s.tree) }

func TestConfigCheckOK(t *testing.T) {
	sim := newSimulated(t)
	r := runCLI(t, "--config", sim.path(t), "config", "check")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	want := []string{
		"ok   config",
		"ok   database",
		"ok   wecom gettoken (app)",
		"ok   wecom gettoken (contacts)",
		"ok   cas",
		"ok   sms (http)",
	}
	if got := strings.Split(strings.TrimSpace(r.stdout), "\n"); !slices.Equal(got, want) {
		t.Errorf("stdout lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := sim.wecom.CallCount("gettoken"); n != 2 {
		t.Errorf("gettoken called %d times, want 2 (one per secret)", n)
	}
}

func TestConfigCheckFailures(t *testing.T) {
	sim := newSimulated(t)
	setKey(t, sim.tree, "wecom.contacts_secret", "wrong-contacts-secret-value")
	sim.cas.Close() // CAS unreachable
	r := runCLI(t, "--config", sim.path(t), "config", "check")
	if r.code == 0 {
		t.Fatalf("exit 0 with a wrong secret and CAS down\n%s", r.stdout)
	}
	for _, want := range []string{"ok   config", "ok   database", "ok   wecom gettoken (app)", "FAIL wecom gettoken (contacts): ", "FAIL cas: "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "wrong-contacts-secret-value") {
		t.Errorf("the wrong secret was printed:\n%s", r.stdout)
	}
}

func TestConfigCheckInvalidConfig(t *testing.T) {
	sim := newSimulated(t)
	setKey(t, sim.tree, "wecom.callback_aes_key", testAESKey[:42])
	r := runCLI(t, "--config", sim.path(t), "config", "check")
	if r.code == 0 {
		t.Fatal("exit 0 with a 42-character aes key")
	}
	// One line for the check on stdout; the problem itself on stderr, as for every command.
	if want := "FAIL config: 1 problem(s), listed on stderr\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if want := "config: wecom.callback_aes_key: "; !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr = %q, want one line starting with %q", r.stderr, want)
	}
	if sim.wecom.CallCount("gettoken") != 0 {
		t.Error("probes ran although the config is invalid")
	}
}

func TestEnvOverrideWinsInConfigCheck(t *testing.T) {
	sim := newSimulated(t)
	setKey(t, sim.tree, "wecom.app_secret", "stale-app-secret-in-file")
	path := sim.path(t)
	if r := runCLI(t, "--config", path, "config", "check"); r.code == 0 || !strings.Contains(r.stdout, "FAIL wecom gettoken (app)") {
		t.Fatalf("the file's wrong secret passed: exit %d\n%s", r.code, r.stdout)
	}
	t.Setenv("WECAMPUS_WECOM_APP_SECRET", testAppSecret)
	if r := runCLI(t, "--config", path, "config", "check"); r.code != 0 {
		t.Fatalf("env override ignored: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// WECAMPUS_CONFIG names the file when --config is absent.
	t.Setenv("WECAMPUS_CONFIG", path)
	if r := runCLI(t, "config", "check"); r.code != 0 {
		t.Fatalf("WECAMPUS_CONFIG: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestBadConfigOneLine: every command refuses a bad config with one stderr line naming the key.
func TestBadConfigOneLine(t *testing.T) {
	tests := []struct {
		key   string
		value any
	}{
		{"wecom.callback_aes_key", testAESKey[:42]},
		{"server.base_url", "wecampus.example.edu.cn/bind"},
		{"server.session_secret", "too-short"},
		{"identity.rules.0.number", "([0-9]"},
		{"identity.userid", "{{.Number}"},
		{"database.driver", "mongodb"},
		{"wecom.corp_id", deleteKey},
		{"sms.http.url", deleteKey},
		{"wecom.agent_id", -1},
	}
	for _, tt := range tests {
		for _, cmd := range [][]string{{"serve"}, {"migrate"}, {"binding", "list"}} {
			t.Run(tt.key+"/"+strings.Join(cmd, "_"), func(t *testing.T) {
				tree := baseConfig(t)
				setKey(t, tree, tt.key, tt.value)
				r := runCLI(t, append([]string{"--config", writeConfig(t, tree)}, cmd...)...)
				if r.code == 0 {
					t.Fatal("exit 0")
				}
				lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				if len(lines) != 1 || !strings.Contains(lines[0], strings.Replace(tt.key, ".0.", "[0].", 1)) {
					t.Errorf("stderr = %q, want one line naming %s", r.stderr, tt.key)
				}
			})
		}
	}
}

func TestUnknownKeyRefused(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "wecom.agentid", 1000002)
	r := runCLI(t, "--config", writeConfig(t, tree), "serve")
	if r.code == 0 || strings.TrimSpace(r.stderr) != "config: wecom.agentid: unknown key (did you mean wecom.agent_id?)" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestServeRefusesLogSMS(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "sms.provider", "log")
	r := runCLI(t, "--config", writeConfig(t, tree), "serve")
	if r.code == 0 || !strings.Contains(r.stderr, "sms.allow_log") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"binding", "get"}, {"binding", "list", "--nope"}, {"binding", "list", "--status", "gone"}, {"version", "extra"}} {
		r := runCLI(t, args...)
		if r.code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, r.code, exitUsage, r.stderr)
		}
		if r.stderr == "" {
			t.Errorf("%q: nothing on stderr", args)
		}
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, "version")
	if r.code != 0 || r.stdout != "wecampus dev\n" {
		t.Errorf("exit %d, stdout %q", r.code, r.stdout)
	}
}

// seedBindings migrates the config's database and stores two bindings.
func seedBindings(t *testing.T, path string) []*app.Binding {
	t.Helper()
	if r := runCLI(t, "--config", path, "migrate"); r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	clock := time.Date(2025, 9, 1, 8, 0, 0, 0, time.UTC)
	db, err := store.Open(ctx, storeConfig(cfg), func() time.Time { return clock }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list := []*app.Binding{
		{Number: "20210001", UserID: "20210001", Mobile: "13800000001", Name: "张三", Type: "student", Department: 2, Status: app.StatusActive},
		{Number: "T0042", UserID: "t0042", Mobile: "13900000002", Name: "李四, \"老师\"", Type: "staff", Department: 3, Status: app.StatusPending},
	}
	for _, b := range list {
		if err := db.CreateBinding(ctx, b, app.Event{Kind: app.EventBound, Actor: app.ActorAdmin, Number: b.Number}); err != nil {
			t.Fatal(err)
		}
	}
	return list
}

func TestBindingGet(t *testing.T) {
	path := writeConfig(t, baseConfig(t))
	seedBindings(t, path)

	for _, key := range []string{"20210001", "13800000001"} {
		r := runCLI(t, "--config", path, "binding", "get", key, "--json")
		if r.code != 0 {
			t.Fatalf("get %s: exit %d\n%s", key, r.code, r.stderr)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.stdout)
		}
		for _, f := range bindingFields {
			if _, ok := got[f]; !ok {
				t.Errorf("JSON lacks %q: %s", f, r.stdout)
			}
		}
		want := map[string]any{"number": "20210001", "userid": "20210001", "mobile": "13800000001", "name": "张三",
			"type": "student", "department": float64(2), "status": "active", "created_at": "2025-09-01T08:00:00Z"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(got["updated_at"])); err != nil {
			t.Errorf("updated_at %v is not RFC 3339", got["updated_at"])
		}
	}

	r := runCLI(t, "--config", path, "binding", "get", "t0042")
	if r.code != 0 || !strings.Contains(r.stdout, "T0042") || !strings.Contains(r.stdout, "pending") {
		t.Errorf("text output: exit %d\n%s", r.code, r.stdout)
	}

	r = runCLI(t, "--config", path, "binding", "get", "99999999", "--json")
	if r.code != exitNotFound {
		t.Errorf("unknown key: exit %d, want 3 (stderr %q)", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("unknown key printed to stdout: %q", r.stdout)
	}
}

func TestBindingList(t *testing.T) {
	path := writeConfig(t, baseConfig(t))
	seedBindings(t, path)

	r := runCLI(t, "--config", path, "binding", "list", "--csv")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, r.stdout)
	}
	if len(rows) != 3 || !slices.Equal(rows[0], bindingFields) {
		t.Fatalf("rows = %q", rows)
	}
	if rows[1][0] != "20210001" || rows[2][3] != "李四, \"老师\"" || rows[2][6] != "pending" || rows[1][7] != "2025-09-01T08:00:00Z" {
		t.Errorf("rows = %q", rows)
	}

	r = runCLI(t, "--config", path, "binding", "list", "--status", "pending", "--csv")
	if rows, _ := csv.NewReader(strings.NewReader(r.stdout)).ReadAll(); r.code != 0 || len(rows) != 2 || rows[1][0] != "T0042" {
		t.Errorf("--status pending: exit %d\n%s", r.code, r.stdout)
	}

	r = runCLI(t, "--config", path, "binding", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "NUMBER") || !strings.Contains(r.stdout, "20210001") || !strings.Contains(r.stdout, "2 binding(s)") {
		t.Errorf("table: exit %d\n%s", r.code, r.stdout)
	}
}

func TestServeDrainsAndStops(t *testing.T) {
	sim := newSimulated(t)
	setKey(t, sim.tree, "log.level", "info")
	path := sim.path(t)

	entered := make(chan struct{})
	release := make(chan struct{})
	listening := make(chan net.Addr, 1)
	var stderr syncBuffer
	c := &cli{
		stdout: io.Discard,
		stderr: &stderr,
		wrapHandler: func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.HandleFunc("/test/slow", func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				<-release
				_, _ = io.WriteString(w, "slow done")
			})
			mux.Handle("/", h)
			return mux
		},
		onListen: func(a net.Addr) { listening <- a },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() { exit <- c.run(ctx, []string{"--config", path, "serve"}) }()

	var addr net.Addr
	select {
	case addr = <-listening:
	case code := <-exit:
		t.Fatalf("serve exited %d before listening:\n%s", code, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not listen:\n%s", stderr.String())
	}
	base := "http://" + addr.String()

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d", resp.StatusCode)
	}

	type slowResult struct {
		body string
		err  error
	}
	slow := make(chan slowResult, 1)
	go func() {
		resp, err := http.Get(base + "/test/slow")
		if err != nil {
			slow <- slowResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		slow <- slowResult{string(b), err}
	}()
	<-entered

	cancel() // what SIGTERM does through signal.NotifyContext
	select {
	case code := <-exit:
		t.Fatalf("serve exited %d with a request in flight", code)
	case <-time.After(300 * time.Millisecond):
	}
	// New connections are refused while draining.
	if conn, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
		conn.Close()
		t.Error("a new connection was accepted after shutdown began")
	}
	close(release)

	res := <-slow
	if res.err != nil || res.body != "slow done" {
		t.Errorf("in-flight request: body %q, err %v", res.body, res.err)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d after a clean stop:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	logs := stderr.String()
	assertNoSecrets(t, logs)
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no stop log:\n%s", logs)
	}
	if strings.Contains(logs, "server.base_url is not https") {
		t.Errorf("an https base_url was warned about:\n%s", logs)
	}
}

// TestServeMetricsAddr: with server.metrics_addr, /metrics is served only on that listener and
// server.addr answers 404 for it (CONTRACT §6); an http base_url is warned about once.
func TestServeMetricsAddr(t *testing.T) {
	sim := newSimulated(t)
	setKey(t, sim.tree, "server.metrics_addr", "127.0.0.1:0")
	setKey(t, sim.tree, "server.base_url", "http://wecampus.example.edu.cn")
	path := sim.path(t)
	listening := make(chan net.Addr, 1)
	metricsAt := make(chan net.Addr, 1)
	var stderr syncBuffer
	c := &cli{stdout: io.Discard, stderr: &stderr,
		onListen:        func(a net.Addr) { listening <- a },
		onMetricsListen: func(a net.Addr) { metricsAt <- a }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() { exit <- c.run(ctx, []string{"--config", path, "serve"}) }()
	var svcAddr, metrics net.Addr
	for svcAddr == nil || metrics == nil {
		select {
		case svcAddr = <-listening:
		case metrics = <-metricsAt:
		case code := <-exit:
			t.Fatalf("serve exited %d:\n%s", code, stderr.String())
		case <-time.After(20 * time.Second):
			t.Fatalf("serve did not listen:\n%s", stderr.String())
		}
	}
	get := func(addr net.Addr, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(metrics, "/metrics"); code != http.StatusOK || !strings.Contains(body, "# TYPE go_goroutines") {
		t.Errorf("metrics listener /metrics: %d\n%.300s", code, body)
	}
	if code, _ := get(svcAddr, "/metrics"); code != http.StatusNotFound {
		t.Errorf("server.addr /metrics: %d, want 404", code)
	}
	if code, _ := get(svcAddr, "/healthz"); code != http.StatusOK {
		t.Errorf("server.addr /healthz: %d", code)
	}
	if code, _ := get(metrics, "/healthz"); code != http.StatusNotFound {
		t.Errorf("metrics listener /healthz: %d, want 404", code)
	}
	// The service's own requests are counted on the metrics listener.
	if _, body := get(metrics, "/metrics"); !strings.Contains(body, `wecampus_http_requests_total{code="200",method="GET",route="/healthz"} 1`) {
		t.Errorf("metrics lack the /healthz request:\n%s", body)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	if n := strings.Count(stderr.String(), "server.base_url is not https"); n != 1 {
		t.Errorf("%d warnings about the http base_url, want 1:\n%s", n, stderr.String())
	}
	if _, err := net.DialTimeout("tcp", metrics.String(), time.Second); err == nil {
		t.Error("the metrics listener still accepts connections after serve stopped")
	}
}

func TestServeAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tree := baseConfig(t)
	setKey(t, tree, "server.addr", ln.Addr().String())
	r := runCLI(t, "--config", writeConfig(t, tree), "serve")
	if r.code == 0 || !strings.Contains(r.stderr, "server.addr") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestMigrate(t *testing.T) {
	tree := baseConfig(t)
	dsn := filepath.Join(t.TempDir(), "m.db")
	setKey(t, tree, "database.dsn", dsn)
	path := writeConfig(t, tree)
	for range 2 { // idempotent
		if r := runCLI(t, "--config", path, "migrate"); r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	}
}

// TestConfigCheckMySQL probes a real MySQL/MariaDB (TEST_MYSQL_DSN); it only pings the server
// (the DSN's database need not exist), so it disturbs nothing.
func TestConfigCheckMySQL(t *testing.T) {
	dsn := os.Getenv("TEST_MYSQL_DSN")
	if dsn == "" {
		t.Skip("TEST_MYSQL_DSN not set")
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("TEST_MYSQL_DSN: %v", err)
	}
	mc.DBName = ""
	dsn = mc.FormatDSN()
	sim := newSimulated(t)
	setKey(t, sim.tree, "database.driver", "mysql")
	setKey(t, sim.tree, "database.dsn", dsn)
	r := runCLI(t, "--config", sim.path(t), "config", "check")
	if r.code != 0 || !strings.Contains(r.stdout, "ok   database\n") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A wrong password fails the probe without printing the password.
	const pw = "Wr0ngPassw0rd-xyz"
	bad := dsn
	if user, rest, ok := strings.Cut(dsn, "@"); ok {
		user, _, _ = strings.Cut(user, ":")
		bad = user + ":" + pw + "@" + rest
	}
	setKey(t, sim.tree, "database.dsn", bad)
	r = runCLI(t, "--config", sim.path(t), "config", "check")
	if r.code == 0 || !strings.Contains(r.stdout, "FAIL database: ") {
		t.Errorf("wrong password: exit %d\n%s", r.code, r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, pw) {
		t.Errorf("password printed:\n%s%s", r.stdout, r.stderr)
	}
}

// TestReadmeMetricsExist: every metric the README names is registered somewhere in the code.
func TestReadmeMetricsExist(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var code strings.Builder
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		code.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`wecampus_[a-z_]+_(?:total|seconds)`).FindAllString(string(readme), -1)
	if len(names) == 0 {
		t.Fatal("the README names no metric")
	}
	for _, name := range names {
		if !strings.Contains(code.String(), `"`+name+`"`) {
			t.Errorf("the README names the metric %s, which no code registers", name)
		}
	}
}
