package main

import (
	"context"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// demoClient is a browser-like HTTP client: a cookie jar, redirects followed.
func demoClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 20 * time.Second}
}

// fetch does a request and returns the final status and body.
func fetch(t *testing.T, hc *http.Client, method, u string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf_token in page:\n%s", page)
	}
	return html.UnescapeString(m[1])
}

// TestDemoCommand runs `wecampus demo` on a free port: health, the console, a whole bind through
// the CAS fake over HTTP, joining through the console (the encrypted change_contact callback
// activates the binding and the outbox sends the welcome message), then a clean stop.
func TestDemoCommand(t *testing.T) {
	listening := make(chan net.Addr, 1)
	var stdout, stderr syncBuffer
	c := &cli{stdout: &stdout, stderr: &stderr, onListen: func(a net.Addr) { listening <- a }}
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	stopped := make(chan struct{})
	// --config pointing nowhere: the demo needs no config file.
	go func() {
		defer close(stopped)
		exit <- c.run(ctx, []string{"--config", "/nonexistent/config.yaml", "demo", "--addr", "127.0.0.1:0"})
	}()
	t.Cleanup(func() { // also after a failure: let the demo remove its data folder
		cancel()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
		}
	})
	var addr net.Addr
	select {
	case addr = <-listening:
	case code := <-exit:
		t.Fatalf("demo exited %d before listening:\n%s", code, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not listen:\n%s", stderr.String())
	}
	base := "http://" + addr.String()

	banner := stdout.String()
	if !strings.Contains(banner, base+"/demo") {
		t.Errorf("the banner does not print the URL to open (%s/demo):\n%s", base, banner)
	}
	dbPath := regexp.MustCompile(`(/\S+demo\.db)`).FindString(banner)
	if dbPath == "" || !strings.Contains(banner, "SQLite") || !strings.Contains(banner, "短信验证码") {
		t.Errorf("the banner does not say where data lives and where SMS codes appear:\n%s", banner)
	} else if _, err := os.Stat(dbPath); err != nil {
		t.Errorf("the database the banner names does not exist: %v", err)
	}

	hc := demoClient(t)
	if code, _ := fetch(t, hc, "GET", base+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	code, page := fetch(t, hc, "GET", base+"/demo", nil)
	if code != http.StatusOK || !strings.Contains(page, "演示控制台") || !strings.Contains(page, "2021000101") {
		t.Fatalf("/demo = %d:\n%s", code, page)
	}

	// The bind flow: /bind/login redirects to the CAS fake's login form.
	code, page = fetch(t, hc, "GET", base+"/bind/login", nil)
	if code != http.StatusOK || !strings.Contains(page, `name="password"`) {
		t.Fatalf("/bind/login did not end on the CAS login form (%d):\n%s", code, page)
	}
	service := base + "/bind/cas"
	loginURL := base + "/demo/cas/login?" + url.Values{"service": {service}, "renew": {"true"}}.Encode()
	code, page = fetch(t, hc, "POST", loginURL, url.Values{"username": {"2021000101"}, "password": {demoPassword}, "service": {service}, "renew": {"true"}})
	if code != http.StatusOK || !strings.Contains(page, `action="/bind/mobile"`) || !strings.Contains(page, "张三") {
		t.Fatalf("CAS login did not lead to the mobile form (%d):\n%s", code, page)
	}
	code, page = fetch(t, hc, "POST", base+"/bind/mobile", url.Values{"csrf_token": {csrfOf(t, page)}, "mobile": {"13800000101"}})
	if code != http.StatusOK || !strings.Contains(page, "注册成功") || !strings.Contains(page, "138****0101") {
		t.Fatalf("POST /bind/mobile = %d:\n%s", code, page)
	}

	// An alumnus is refused with a clear page.
	hc2 := demoClient(t)
	fetch(t, hc2, "GET", base+"/bind/login", nil)
	code, page = fetch(t, hc2, "POST", loginURL, url.Values{"username": {"2010000001"}, "password": {demoPassword}, "service": {service}, "renew": {"true"}})
	if code != http.StatusForbidden {
		t.Errorf("alumni login: %d, want 403:\n%s", code, page)
	}

	// Joining WeCom from the console: the change_contact callback activates the binding, the
	// outbox delivers the welcome message to the simulator.
	code, page = fetch(t, hc, "GET", base+"/demo", nil)
	if !strings.Contains(page, `data-join="2021000101"`) {
		t.Fatalf("the console offers no join for the pending member (%d):\n%s", code, page)
	}
	code, page = fetch(t, hc, "POST", base+"/demo/join", url.Values{"userid": {"2021000101"}})
	if code != http.StatusOK || !strings.Contains(page, "已加入企业微信") {
		t.Fatalf("POST /demo/join = %d:\n%s", code, page)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, page = fetch(t, hc, "GET", base+"/demo", nil)
		if strings.Contains(page, "欢迎加入") && strings.Contains(page, `<span class="tag active">已绑定</span>`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no active binding and welcome message on the console after joining:\n%s", page)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(page, "/wecom/contacts") || !strings.Contains(page, "change_contact.update_user") {
		t.Errorf("the console does not list the change_contact callback:\n%s", page)
	}

	// HELP: an encrypted click to /wecom/callback, the passive reply decrypted.
	code, page = fetch(t, hc, "POST", base+"/demo/click", url.Values{"key": {"HELP"}})
	if code != http.StatusOK || !strings.Contains(page, "微校园助手使用帮助") || !strings.Contains(page, base+"/unbind") {
		t.Errorf("HELP click = %d:\n%s", code, page)
	}

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d after the context was cancelled:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
	if _, err := os.Stat(dbPath); dbPath != "" && !os.IsNotExist(err) {
		t.Errorf("the demo data folder was not removed: %v", err)
	}
	logs := stderr.String()
	if !strings.Contains(logs, "stopped") {
		t.Errorf("no stop log:\n%s", logs)
	}
	if strings.Contains(logs, "13800000101") {
		t.Errorf("a mobile is logged unmasked:\n%s", logs)
	}
}

// A browser keeps preconnected sockets that never send a request; stopping the demo must not
// fail because of them.
func TestDemoStopsDespiteSilentConnection(t *testing.T) {
	listening := make(chan net.Addr, 1)
	var stderr syncBuffer
	// The silent connection holds the stop until the shutdown timeout: a short one keeps the test
	// fast and takes the same path.
	c := &cli{stdout: io.Discard, stderr: &stderr, onListen: func(a net.Addr) { listening <- a }, demoShutdown: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() { exit <- c.run(ctx, []string{"demo", "--addr", "127.0.0.1:0"}) }()
	var addr net.Addr
	select {
	case addr = <-listening:
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not listen:\n%s", stderr.String())
	}
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(100 * time.Millisecond) // let the server accept it
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d with a silent connection open:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop")
	}
}

func TestDemoAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := runCLI(t, "demo", "--addr", ln.Addr().String())
	if r.code == 0 || !strings.Contains(r.stderr, "--addr") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDemoBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"0.0.0.0:9000":   "http://127.0.0.1:9000",
		"[::]:9000":      "http://127.0.0.1:9000",
		"[::1]:9000":     "http://[::1]:9000",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := demoBaseURL(a); got != want {
			t.Errorf("demoBaseURL(%s) = %s, want %s", in, got, want)
		}
	}
}
