package main

// The contract suite: it plays the independent acceptance suite. It builds the real binary, runs
// `wecampus serve` as a subprocess against the WeCom and CAS simulators and an SMS webhook, and
// drives every flow only through CONTRACT.md: routes, form actions and input names, status codes,
// callback effects, CLI exit codes and JSON. Nothing here reaches into the service's packages
// except the simulators and the callback codec (which plays WeCom's side of the crypto).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/cas/castest"
	"github.com/wecampus/wecampus/wecom/callback"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

const (
	ctCorpID   = "ww9f8e7d6c5b4a3921"
	ctAgentID  = int64(1000002)
	ctOAuthURL = "https://open.example.test"
)

// ctBuild is the binary built once for the whole run (lazily, so that unrelated tests of this
// package do not pay for it), and ctShared the service most contract tests share.
var (
	ctBuildOnce sync.Once
	ctBin       string
	ctBinDir    string
	ctBuildErr  error

	ctSharedOnce sync.Once
	ctShared     *ctWorld
	ctSharedErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if ctShared != nil {
		ctShared.close()
	}
	if ctBinDir != "" {
		os.RemoveAll(ctBinDir)
	}
	os.Exit(code)
}

// ctBinary builds `go build -o <tmp>/wecampus .` once.
func ctBinary(t *testing.T) string {
	t.Helper()
	ctBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wecampus-contract-")
		if err != nil {
			ctBuildErr = err
			return
		}
		ctBinDir = dir
		ctBin = filepath.Join(dir, "wecampus")
		cmd := exec.Command("go", "build", "-o", ctBin, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			ctBuildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if ctBuildErr != nil {
		t.Fatal(ctBuildErr)
	}
	return ctBin
}

// ctRandKey returns n random letters and digits (an EncodingAESKey when n is 43).
func ctRandKey(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// ctBuffer collects a subprocess's output safely.
type ctBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *ctBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *ctBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ctSMSMsg is one request the SMS webhook accepted.
type ctSMSMsg struct {
	Mobile, Code, Purpose, Message string
}

// ctSMS is the SMS gateway of CONTRACT §4: it checks the bearer token and the JSON fields and
// records every message.
type ctSMS struct {
	token string
	srv   *httptest.Server

	mu   sync.Mutex
	msgs []ctSMSMsg
	bad  []string // why a request was refused
}

func newCtSMS(token string) *ctSMS {
	s := &ctSMS{token: token}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

var ctSixDigits = regexp.MustCompile(`^[0-9]{6}$`)

func (s *ctSMS) serve(w http.ResponseWriter, r *http.Request) {
	refuse := func(why string) {
		s.mu.Lock()
		s.bad = append(s.bad, why)
		s.mu.Unlock()
		http.Error(w, why, http.StatusBadRequest)
	}
	if r.Method != http.MethodPost {
		refuse("method " + r.Method)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		refuse("bad Authorization header")
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		refuse("body is not JSON: " + err.Error())
		return
	}
	var m ctSMSMsg
	for key, dst := range map[string]*string{"mobile": &m.Mobile, "code": &m.Code, "purpose": &m.Purpose, "message": &m.Message} {
		v, ok := body[key].(string)
		if !ok {
			refuse("field " + key + " missing or not a string")
			return
		}
		*dst = v
	}
	if !ctSixDigits.MatchString(m.Code) {
		refuse("code is not 6 digits: " + m.Code)
		return
	}
	if !slices.Contains([]string{"verify", "unbind", "migrate"}, m.Purpose) {
		refuse("purpose " + m.Purpose)
		return
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *ctSMS) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// code waits for a message sent after the first `after` ones to mobile for purpose and returns
// its code.
func (s *ctSMS) code(t *testing.T, after int, mobile, purpose string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		bad := slices.Clone(s.bad)
		var found *ctSMSMsg
		for i := after; i < len(s.msgs); i++ {
			if s.msgs[i].Mobile == mobile && s.msgs[i].Purpose == purpose {
				found = &s.msgs[i]
			}
		}
		s.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("the SMS webhook refused requests: %q", bad)
		}
		if found != nil {
			if !strings.Contains(found.Message, found.Code) {
				t.Errorf("SMS message %q does not contain its code", found.Message)
			}
			return found.Code
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SMS with purpose %q to %s (messages: %+v)", purpose, mobile, s.all())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *ctSMS) all() []ctSMSMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// ctWorld is one running `wecampus serve` with its simulators.
type ctWorld struct {
	dir      string
	cfgPath  string
	base     string
	casBase  string
	wc       *wecomtest.Server
	cas      *castest.Server
	sms      *ctSMS
	secrets  []string
	app      *callback.Codec // the app's callback (wecom.callback_token / callback_aes_key)
	contacts *callback.Codec // the 通讯录同步 event server
	env      []string

	cmd            *exec.Cmd
	done           chan struct{}
	exitErr        error
	stdout, stderr ctBuffer
}

// ctFreePort returns a loopback port that was free a moment ago.
func ctFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ctWorldOptions tweak a world's config.
type ctWorldOptions struct {
	casLatency time.Duration
	envAddr    bool // put server.addr in WECAMPUS_SERVER_ADDR, and a wrong one in the file
	noContacts bool // leave both contacts callback keys empty
}

// newCtWorld writes a complete config.yaml and starts serve; it does not wait for readiness.
func newCtWorld(t *testing.T, opts ctWorldOptions) (*ctWorld, error) {
	t.Helper()
	bin := ctBinary(t)
	dir, err := os.MkdirTemp("", "wecampus-contract-world-")
	if err != nil {
		return nil, err
	}
	w := &ctWorld{dir: dir, done: make(chan struct{})}
	appSecret, contactsSecret := "app-"+ctRandKey(24), "contacts-"+ctRandKey(24)
	token, aesKey := ctRandKey(20), ctRandKey(43)
	cToken, cAESKey := ctRandKey(20), ctRandKey(43)
	cfgToken, cfgAESKey := cToken, cAESKey
	if opts.noContacts {
		cfgToken, cfgAESKey = "", ""
	}
	session, smsToken := ctRandKey(48), "sms-"+ctRandKey(24)
	w.secrets = []string{appSecret, contactsSecret, token, aesKey, cToken, cAESKey, session, smsToken}

	w.wc = wecomtest.New(ctCorpID, wecomtest.WithAppSecret(appSecret), wecomtest.WithContactsSecret(contactsSecret), wecomtest.WithAgentID(ctAgentID))
	w.cas = castest.New()
	if opts.casLatency > 0 {
		w.cas.SetLatency(opts.casLatency)
	}
	w.casBase = w.cas.URL() + "/authserver" // a CAS under a path, like most schools'
	w.sms = newCtSMS(smsToken)
	if w.app, err = callback.New(ctCorpID, token, aesKey); err != nil {
		return nil, err
	}
	if w.contacts, err = callback.New(ctCorpID, cToken, cAESKey); err != nil {
		return nil, err
	}

	port := ctFreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	w.base = "http://" + addr
	fileAddr := addr
	if opts.envAddr {
		fileAddr = fmt.Sprintf("127.0.0.1:%d", ctFreePort(t))
		w.env = append(w.env, "WECAMPUS_SERVER_ADDR="+addr)
	}
	cfg := fmt.Sprintf(`server:
  addr: %q
  base_url: %q
  session_secret: %q
database:
  driver: "sqlite"
  dsn: %q
log:
  level: "info"
  format: "json"
wecom:
  corp_id: %q
  agent_id: %d
  app_secret: %q
  contacts_secret: %q
  callback_token: %q
  callback_aes_key: %q
  contacts_callback_token: %q
  contacts_callback_aes_key: %q
  callback_max_age: "5m"
  api_base: %q
  oauth_base: %q
  verify_mode: "tfa"
cas:
  base_url: %q
  protocol: 3
  attributes: { name: "cn", type: "userType" }
identity:
  userid: "{{.Number}}"
  rules:
    - { type: "student", number: "^[0-9]{8,12}$", department: 2, label: "学生" }
    - { type: "staff", department: 3, label: "教职工" }
sms:
  provider: "http"
  http: { url: %q, token: %q }
`, fileAddr, w.base, session, filepath.Join(dir, "wecampus.db"),
		ctCorpID, ctAgentID, appSecret, contactsSecret, token, aesKey, cfgToken, cfgAESKey,
		w.wc.URL(), ctOAuthURL, w.casBase, w.sms.srv.URL, smsToken)
	w.cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}

	w.cmd = exec.Command(bin, "--config", w.cfgPath, "serve")
	w.cmd.Env = append(ctEnv(), w.env...)
	w.cmd.Stdout, w.cmd.Stderr = &w.stdout, &w.stderr
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		w.exitErr = w.cmd.Wait()
		close(w.done)
	}()
	return w, nil
}

// ctEnv is the environment without any WECAMPUS_ variable of the developer's shell.
func ctEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WECAMPUS_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls /readyz until it answers 200.
func (w *ctWorld) waitReady() error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-w.done:
			return fmt.Errorf("serve exited early (%v):\n%s\n%s", w.exitErr, w.stdout.String(), w.stderr.String())
		default:
		}
		resp, err := http.Get(w.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("serve not ready after 20s:\n%s\n%s", w.stdout.String(), w.stderr.String())
}

// stop sends SIGTERM and waits for the exit.
func (w *ctWorld) stop() error {
	if w.cmd == nil || w.cmd.Process == nil {
		return nil
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
		return w.exitErr
	case <-time.After(20 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
		return errors.New("serve did not stop within 20s of SIGTERM")
	}
}

func (w *ctWorld) close() {
	_ = w.stop()
	w.wc.Close()
	w.cas.Close()
	w.sms.srv.Close()
	os.RemoveAll(w.dir)
}

// ctWorldShared returns the service the contract tests share.
func ctWorldShared(t *testing.T) *ctWorld {
	t.Helper()
	ctSharedOnce.Do(func() {
		w, err := newCtWorld(t, ctWorldOptions{})
		if err == nil {
			err = w.waitReady()
		}
		ctShared, ctSharedErr = w, err
	})
	if ctSharedErr != nil {
		t.Fatal(ctSharedErr)
	}
	if ctShared == nil {
		t.Fatal("the shared service did not start (see the first contract test)")
	}
	return ctShared
}

// ctRun is one CLI run.
type ctRun struct {
	code           int
	stdout, stderr string
}

// cli runs the binary with this world's config.
func (w *ctWorld) cli(t *testing.T, env []string, args ...string) ctRun {
	t.Helper()
	return ctCLI(t, w.secrets, append(slices.Clone(w.env), env...), append([]string{"--config", w.cfgPath}, args...)...)
}

func ctCLI(t *testing.T, secrets, env []string, args ...string) ctRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctBinary(t), args...)
	cmd.Env = append(ctEnv(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := ctRun{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("wecampus %q: %v", args, err)
	}
	for _, s := range secrets {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("wecampus %q prints a secret (%.6s…):\n%s\n%s", args, s, r.stdout, r.stderr)
		}
	}
	return r
}

// ctBindingJSON is `binding get --json`.
type ctBindingJSON struct {
	Number     string `json:"number"`
	UserID     string `json:"userid"`
	Mobile     string `json:"mobile"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Department int64  `json:"department"`
	Status     string `json:"status"`
	CreatedAt  string `json:"created_at"`
	UpdatedAt  string `json:"updated_at"`
}

// binding reads a binding through `binding get KEY --json`; nil when the command exits 3.
func (w *ctWorld) binding(t *testing.T, key string) *ctBindingJSON {
	t.Helper()
	r := w.cli(t, nil, "binding", "get", key, "--json")
	if r.code == 3 {
		return nil
	}
	if r.code != 0 {
		t.Fatalf("binding get %s: exit %d\n%s%s", key, r.code, r.stdout, r.stderr)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("binding get %s --json: not one JSON object: %v\n%s", key, err, r.stdout)
	}
	for _, f := range []string{"number", "userid", "mobile", "name", "type", "department", "status", "created_at", "updated_at"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("binding get --json lacks %q: %s", f, r.stdout)
		}
	}
	var b ctBindingJSON
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil {
		t.Fatalf("binding get --json: %v\n%s", err, r.stdout)
	}
	for _, ts := range []string{b.CreatedAt, b.UpdatedAt} {
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("binding time %q is not RFC 3339: %v", ts, err)
		}
	}
	if !slices.Contains([]string{"pending", "active", "unbound", "migrated"}, b.Status) {
		t.Errorf("binding status %q", b.Status)
	}
	return &b
}

// waitStatus polls the binding of key until it has status.
func (w *ctWorld) waitStatus(t *testing.T, key, status string) *ctBindingJSON {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b := w.binding(t, key)
		if b != nil && b.Status == status {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("binding %s: want status %s, have %+v", key, status, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// welcomes counts the app messages sent to userID.
func (w *ctWorld) welcomes(userID string) int {
	n := 0
	for _, m := range w.wc.Messages() {
		if m.ToUser == userID {
			n++
		}
	}
	return n
}

// waitWelcomes waits until want messages went to userID, then checks a little longer that no
// more follow.
func (w *ctWorld) waitWelcomes(t *testing.T, userID string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for w.welcomes(userID) < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if n := w.welcomes(userID); n != want {
		t.Fatalf("message/send to %s: %d messages, want %d: %+v", userID, n, want, w.wc.Messages())
	}
}

// deleteMember deletes a member through the simulator's API, as an admin in the console would:
// no callback reaches the service.
func (w *ctWorld) deleteMember(t *testing.T, userID string) {
	t.Helper()
	var tok struct {
		ErrCode     int    `json:"errcode"`
		AccessToken string `json:"access_token"`
	}
	resp, err := http.Get(w.wc.URL() + "/cgi-bin/gettoken?corpid=" + ctCorpID + "&corpsecret=" + url.QueryEscape(w.secrets[1]))
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.ErrCode != 0 {
		t.Fatalf("gettoken: %v %+v", err, tok)
	}
	resp, err = http.Get(w.wc.URL() + "/cgi-bin/user/delete?access_token=" + tok.AccessToken + "&userid=" + url.QueryEscape(userID))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, ok := w.wc.Member(userID); ok {
		t.Fatalf("member %s not deleted", userID)
	}
}

// --- HTTP client ---

// ctResp is a response read whole.
type ctResp struct {
	status int
	header http.Header
	body   string
	url    string
}

// ctClient is a member's browser without JavaScript: a cookie jar, no automatic redirects.
type ctClient struct {
	t  *testing.T
	w  *ctWorld
	hc *http.Client
}

func (w *ctWorld) client(t *testing.T) *ctClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &ctClient{t: t, w: w, hc: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *ctClient) do(method, u string, form url.Values) *ctResp {
	c.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = c.w.base + u
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	r := &ctResp{status: resp.StatusCode, header: resp.Header, body: string(b), url: u}
	if r.status >= 500 {
		c.t.Errorf("%s %s: %d (a 5xx for something the caller did):\n%s", method, u, r.status, r.body)
	}
	return r
}

// follow turns a 303 (post/redirect/get) into the GET page it points at.
func (c *ctClient) follow(r *ctResp) *ctResp {
	c.t.Helper()
	for i := 0; r.status == http.StatusSeeOther && i < 5; i++ {
		loc, err := url.Parse(r.header.Get("Location"))
		if err != nil {
			c.t.Fatalf("bad Location %q", r.header.Get("Location"))
		}
		from, _ := url.Parse(r.url)
		r = c.do(http.MethodGet, from.ResolveReference(loc).String(), nil)
	}
	return r
}

func (c *ctClient) get(path string) *ctResp {
	c.t.Helper()
	return c.follow(c.do(http.MethodGet, path, nil))
}

// submit posts the form of page whose action is exactly action: every hidden input copied, then
// fields (each must be an input of the form). drop names hidden inputs to leave out.
func (c *ctClient) submit(page *ctResp, action string, fields map[string]string, drop ...string) *ctResp {
	c.t.Helper()
	f := ctFindForm(page.body, action)
	if f == nil {
		c.t.Fatalf("%s (%d): no form action=%q:\n%s", page.url, page.status, action, page.body)
	}
	if m := strings.ToLower(f.method); m != "post" {
		c.t.Errorf("form %s has method %q, want post", action, f.method)
	}
	vals := url.Values{}
	for _, in := range f.inputs {
		if in.typ == "hidden" && !slices.Contains(drop, in.name) {
			vals.Set(in.name, in.value)
		}
	}
	for k, v := range fields {
		if !f.has(k) {
			c.t.Fatalf("form %s has no input name=%q:\n%s", action, k, page.body)
		}
		vals.Set(k, v)
	}
	return c.follow(c.do(http.MethodPost, action, vals))
}

// ctForm is a parsed <form>.
type ctForm struct {
	action, method string
	inputs         []ctInput
}

type ctInput struct{ name, typ, value string }

func (f *ctForm) has(name string) bool {
	return slices.ContainsFunc(f.inputs, func(in ctInput) bool { return in.name == name })
}

func ctAttr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// ctForms parses every form of an HTML page.
func ctForms(page string) []*ctForm {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return nil
	}
	var forms []*ctForm
	var walk func(n *html.Node, cur *ctForm)
	walk = func(n *html.Node, cur *ctForm) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				cur = &ctForm{action: ctAttr(n, "action"), method: ctAttr(n, "method")}
				forms = append(forms, cur)
			case "input", "textarea", "select", "button":
				if cur != nil && ctAttr(n, "name") != "" {
					typ := strings.ToLower(ctAttr(n, "type"))
					if n.Data == "input" && typ == "" {
						typ = "text"
					}
					cur.inputs = append(cur.inputs, ctInput{name: ctAttr(n, "name"), typ: typ, value: ctAttr(n, "value")})
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch, cur)
		}
	}
	walk(doc, nil)
	return forms
}

func ctFindForm(page, action string) *ctForm {
	for _, f := range ctForms(page) {
		if f.action == action {
			return f
		}
	}
	return nil
}

// ctLinks returns the href of every <a>.
func ctLinks(page string) []string {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return nil
	}
	var links []string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" {
			links = append(links, ctAttr(n, "href"))
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(doc)
	return links
}

func ctWant(t *testing.T, r *ctResp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d:\n%s", r.url, r.status, status, r.body)
	}
}

func ctWant4xx(t *testing.T, r *ctResp) {
	t.Helper()
	if r.status < 400 || r.status > 499 {
		t.Errorf("%s: status %d, want 4xx:\n%.600s", r.url, r.status, r.body)
	}
}

// --- flows ---

// ctPerson is a CAS account.
type ctPerson struct {
	number, name, typ, mobile string
}

var (
	ctSeqMu sync.Mutex
	ctSeq   = 0
)

// newPerson adds a CAS account with a fresh number and mobile.
func (w *ctWorld) newPerson(name, typ string) ctPerson {
	ctSeqMu.Lock()
	ctSeq++
	n := ctSeq
	ctSeqMu.Unlock()
	p := ctPerson{number: fmt.Sprintf("20249%05d", n), name: name, typ: typ, mobile: fmt.Sprintf("1390000%04d", n)}
	w.cas.AddUser(p.number, "pw", p.name, p.typ)
	return p
}

// casLogin goes /bind → /bind/login → CAS → /bind/cas and returns the /bind/cas answer.
func (c *ctClient) casLogin(number string) *ctResp {
	c.t.Helper()
	t := c.t
	start := c.get("/bind")
	ctWant(t, start, http.StatusOK)
	hasLogin := slices.ContainsFunc(ctLinks(start.body), func(h string) bool {
		u, err := url.Parse(h)
		return err == nil && u.Path == "/bind/login"
	}) || ctFindForm(start.body, "/bind/login") != nil
	if !hasLogin {
		t.Fatalf("/bind has no link or form to /bind/login:\n%s", start.body)
	}
	login := c.do(http.MethodGet, "/bind/login", nil)
	ctWant(t, login, http.StatusFound)
	loc, err := url.Parse(login.header.Get("Location"))
	if err != nil {
		t.Fatalf("bad Location %q", login.header.Get("Location"))
	}
	service := c.w.base + "/bind/cas"
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != c.w.casBase+"/login" {
		t.Errorf("/bind/login redirects to %s, want %s/login", got, c.w.casBase)
	}
	q := loc.Query()
	if q.Get("service") != service || q.Get("renew") != "true" || len(q) != 2 {
		t.Errorf("/bind/login redirect query %v, want service=%s&renew=true", q, service)
	}
	ticket := c.w.cas.IssueTicket(number, service)
	return c.get("/bind/cas?ticket=" + url.QueryEscape(ticket))
}

// bind runs the whole bind flow for p and returns the follow page.
func (c *ctClient) bind(p ctPerson) *ctResp {
	c.t.Helper()
	page := c.casLogin(p.number)
	ctWant(c.t, page, http.StatusOK)
	done := c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile})
	ctWant(c.t, done, http.StatusOK)
	return done
}

// oauth drives GET path (/unbind or /me) through the WeCom OAuth redirect as userID.
func (c *ctClient) oauth(path, userID string) *ctResp {
	c.t.Helper()
	r := c.do(http.MethodGet, path, nil)
	ctWant(c.t, r, http.StatusFound)
	state := ctCheckOAuthRedirect(c.t, r.header.Get("Location"), c.w.base+path)
	code := c.w.wc.IssueOAuthCode(userID)
	return c.get(path + "?code=" + url.QueryEscape(code) + "&state=" + url.QueryEscape(state))
}

// ctCheckOAuthRedirect checks the exact shape of CONTRACT §3 and returns the state.
func ctCheckOAuthRedirect(t *testing.T, location, redirectURI string) string {
	t.Helper()
	prefix := ctOAuthURL + "/connect/oauth2/authorize?"
	rest, ok := strings.CutPrefix(location, prefix)
	if !ok {
		t.Fatalf("OAuth redirect %q does not start with %q", location, prefix)
	}
	query, frag, ok := strings.Cut(rest, "#")
	if !ok || frag != "wechat_redirect" {
		t.Errorf("OAuth redirect %q does not end with #wechat_redirect", location)
	}
	var keys []string
	vals := url.Values{}
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		dv, err := url.QueryUnescape(v)
		if err != nil {
			t.Fatalf("OAuth redirect %q: bad escape in %s", location, kv)
		}
		keys = append(keys, k)
		vals.Set(k, dv)
	}
	if want := []string{"appid", "redirect_uri", "response_type", "scope", "state", "agentid"}; !slices.Equal(keys, want) {
		t.Errorf("OAuth redirect parameters %v, want in order %v", keys, want)
	}
	if vals.Get("appid") != ctCorpID || vals.Get("redirect_uri") != redirectURI ||
		vals.Get("response_type") != "code" || vals.Get("scope") != "snsapi_base" ||
		vals.Get("agentid") != strconv.FormatInt(ctAgentID, 10) || vals.Get("state") == "" {
		t.Errorf("OAuth redirect %q: values %v", location, vals)
	}
	return vals.Get("state")
}

// --- callbacks ---

var ctNonceSeq atomic.Int64

// callback encrypts in with codec and POSTs it to path at timestamp ts; it returns the status and
// the reply's plaintext Content ("" for an empty body).
func (w *ctWorld) callback(t *testing.T, codec *callback.Codec, path string, in *app.Inbound, ts int64) (int, string) {
	t.Helper()
	nonce := fmt.Sprintf("n%d", ctNonceSeq.Add(1))
	timestamp := strconv.FormatInt(ts, 10)
	body, sig, err := codec.EncryptEvent(callback.EventXML(in), timestamp, nonce)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"msg_signature": {sig}, "timestamp": {timestamp}, "nonce": {nonce}}
	status, reply := w.rawPost(t, path+"?"+q.Encode(), body)
	if status != http.StatusOK || len(reply) == 0 {
		return status, ""
	}
	plain, err := codec.OpenReply(reply)
	if err != nil {
		t.Fatalf("reply to %s is not an encrypted passive reply: %v\n%s", in.Kind(), err, reply)
	}
	var x struct {
		ToUserName, FromUserName, MsgType, Content string
	}
	if err := xml.Unmarshal(plain, &x); err != nil {
		t.Fatalf("reply plaintext: %v\n%s", err, plain)
	}
	if x.ToUserName != in.FromUser || x.FromUserName != ctCorpID || x.MsgType != "text" {
		t.Errorf("reply header To=%q From=%q MsgType=%q", x.ToUserName, x.FromUserName, x.MsgType)
	}
	return status, x.Content
}

func (w *ctWorld) rawPost(t *testing.T, pathAndQuery string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(w.base+pathAndQuery, "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 {
		t.Errorf("POST %s: %d", pathAndQuery, resp.StatusCode)
	}
	return resp.StatusCode, b
}

func ctGET(t *testing.T, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func ctEvent(from, event, key string) *app.Inbound {
	return &app.Inbound{ToUser: ctCorpID, FromUser: from, CreateTime: time.Now().Unix(), MsgType: "event",
		AgentID: strconv.FormatInt(ctAgentID, 10), Event: event, EventKey: key}
}

var ctMsgSeq atomic.Int64

func ctText(from, content string) *app.Inbound {
	id := 7300000000000000000 + ctMsgSeq.Add(1)
	return &app.Inbound{ToUser: ctCorpID, FromUser: from, CreateTime: time.Now().Unix(), MsgType: "text",
		AgentID: strconv.FormatInt(ctAgentID, 10), Content: content, MsgID: strconv.FormatInt(id, 10)}
}

func ctChange(changeType, userID string, mod func(*app.Inbound)) *app.Inbound {
	in := &app.Inbound{ToUser: ctCorpID, FromUser: "sys", CreateTime: time.Now().Unix(), MsgType: "event",
		Event: "change_contact", ChangeType: changeType, UserID: userID}
	if mod != nil {
		mod(in)
	}
	return in
}

// ==== tests ====

func TestContractOps(t *testing.T) {
	w := ctWorldShared(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if st, body, _ := ctGET(t, w.base+p); st != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, st, body)
		}
	}
	st, body, h := ctGET(t, w.base+"/metrics")
	if st != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") || !strings.Contains(body, "# TYPE ") {
		t.Errorf("GET /metrics: %d %q\n%.300s", st, h.Get("Content-Type"), body)
	}
	if st, _, _ := ctGET(t, w.base+"/no/such/page"); st != http.StatusNotFound {
		t.Errorf("unknown route: %d, want 404", st)
	}
}

func TestContractCallbackVerifyURL(t *testing.T) {
	w := ctWorldShared(t)
	for _, tc := range []struct {
		path  string
		codec *callback.Codec
	}{{"/wecom/callback", w.app}, {"/wecom/contacts", w.contacts}} {
		plain := "echo-" + ctRandKey(16)
		ts := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10) // GET is exempt from max_age
		echostr, sig, err := tc.codec.EncryptEcho(plain, ts, "nonce1")
		if err != nil {
			t.Fatal(err)
		}
		q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {"nonce1"}, "echostr": {echostr}}
		st, body, _ := ctGET(t, w.base+tc.path+"?"+q.Encode())
		if st != http.StatusOK || body != plain {
			t.Errorf("GET %s verification: %d %q, want 200 %q", tc.path, st, body, plain)
		}
		bad := url.Values{"msg_signature": {strings.Repeat("0", 40)}, "timestamp": {ts}, "nonce": {"nonce1"}, "echostr": {echostr}}
		if st, _, _ := ctGET(t, w.base+tc.path+"?"+bad.Encode()); st != http.StatusForbidden {
			t.Errorf("GET %s bad signature: %d, want 403", tc.path, st)
		}
		if st, _, _ := ctGET(t, w.base+tc.path+"?timestamp=1&nonce=2"); st != http.StatusBadRequest {
			t.Errorf("GET %s without echostr: %d, want 400", tc.path, st)
		}
		// A valid signature over an echostr that is not valid ciphertext.
		junk := "not*base64"
		q = url.Values{"msg_signature": {ctSign(w, tc.codec, ts, "n", junk)}, "timestamp": {ts}, "nonce": {"n"}, "echostr": {junk}}
		if st, _, _ := ctGET(t, w.base+tc.path+"?"+q.Encode()); st != http.StatusBadRequest && st != http.StatusForbidden {
			t.Errorf("GET %s with a junk echostr: %d, want 400", tc.path, st)
		}
	}
	// A raw '+' in the query is a space: the echostr no longer matches its signature.
	for range 50 {
		plain := "raw-plus-" + ctRandKey(12)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		echostr, sig, err := w.app.EncryptEcho(plain, ts, "n2")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(echostr, "+") {
			continue
		}
		raw := "msg_signature=" + sig + "&timestamp=" + ts + "&nonce=n2&echostr=" + echostr
		if st, _, _ := ctGET(t, w.base+"/wecom/callback?"+raw); st != http.StatusForbidden {
			t.Errorf("echostr with an unescaped '+': %d, want 403", st)
		}
		break
	}
	// The app's token on the contacts server.
	plain := "cross"
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	echostr, sig, _ := w.app.EncryptEcho(plain, ts, "n")
	q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {"n"}, "echostr": {echostr}}
	if st, _, _ := ctGET(t, w.base+"/wecom/contacts?"+q.Encode()); st != http.StatusForbidden {
		t.Errorf("GET /wecom/contacts signed with the app token: %d, want 403", st)
	}
}

// ctSign computes a msg_signature with the world's tokens: sha1 over the sorted token,
// timestamp, nonce and data (加解密方案说明).
func ctSign(w *ctWorld, codec *callback.Codec, ts, nonce, data string) string {
	token := w.secrets[2]
	if codec == w.contacts {
		token = w.secrets[4]
	}
	parts := []string{token, ts, nonce, data}
	slices.Sort(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	return hex.EncodeToString(sum[:])
}

func TestContractCallbackPost(t *testing.T) {
	w := ctWorldShared(t)
	now := time.Now().Unix()

	t.Run("help and keywords", func(t *testing.T) {
		st, content := w.callback(t, w.app, "/wecom/callback", ctEvent("kw-user", "click", "HELP"), now)
		if st != http.StatusOK {
			t.Fatalf("HELP click: %d", st)
		}
		for _, p := range []string{"/bind", "/unbind", "/verify"} {
			if !strings.Contains(content, w.base+p) {
				t.Errorf("HELP reply lacks %s%s: %q", w.base, p, content)
			}
		}
		for kw, want := range map[string][]string{
			"我想绑定账号": {"/bind"}, "怎么解绑": {"/unbind"}, "身份验证": {"/verify"}, "帮助": {"/bind", "/unbind", "/verify"},
		} {
			st, content := w.callback(t, w.app, "/wecom/callback", ctText("kw-user", kw), now)
			if st != http.StatusOK || content == "" {
				t.Errorf("text %q: %d %q", kw, st, content)
				continue
			}
			for _, p := range want {
				if !ctHasLink(content, w.base+p) {
					t.Errorf("reply to %q lacks %s%s: %q", kw, w.base, p, content)
				}
			}
			if len(want) == 1 {
				for _, other := range []string{"/bind", "/unbind", "/verify"} {
					if other != want[0] && ctHasLink(content, w.base+other) {
						t.Errorf("reply to %q links %s too: %q", kw, other, content)
					}
				}
			}
		}
		st, content = w.callback(t, w.app, "/wecom/callback", ctText("kw-user", "你好"), now)
		if st != http.StatusOK || content != "" {
			t.Errorf("other text: %d %q, want 200 with an empty body", st, content)
		}
		st, content = w.callback(t, w.app, "/wecom/callback", ctEvent("kw-user", "click", "OTHER"), now)
		if st != http.StatusOK || content != "" {
			t.Errorf("other click: %d %q, want 200 with an empty body", st, content)
		}
		st, content = w.callback(t, w.app, "/wecom/callback", ctEvent("kw-user", "enter_agent", ""), now)
		if st != http.StatusOK || content != "" {
			t.Errorf("enter_agent: %d %q, want 200 with an empty body", st, content)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		in := ctEvent("kw-user", "click", "HELP")
		for _, d := range []time.Duration{-10 * time.Minute, 10 * time.Minute} {
			if st, _ := w.callback(t, w.app, "/wecom/callback", in, time.Now().Add(d).Unix()); st != http.StatusForbidden {
				t.Errorf("timestamp %v away: %d, want 403", d, st)
			}
		}
		if st, _ := w.callback(t, w.app, "/wecom/contacts", ctChange("update_user", "x", nil), now); st != http.StatusForbidden {
			t.Errorf("app-signed POST to /wecom/contacts: %d, want 403", st)
		}
		if st, _ := w.callback(t, w.contacts, "/wecom/callback", in, now); st != http.StatusForbidden {
			t.Errorf("contacts-signed POST to /wecom/callback: %d, want 403", st)
		}
		ts := strconv.FormatInt(now, 10)
		body, sig, _ := w.app.EncryptEvent(callback.EventXML(in), ts, "nn")
		q := url.Values{"msg_signature": {strings.Repeat("a", 40)}, "timestamp": {ts}, "nonce": {"nn"}}
		if st, _ := w.rawPost(t, "/wecom/callback?"+q.Encode(), body); st != http.StatusForbidden {
			t.Errorf("bad signature: %d, want 403", st)
		}
		q.Set("msg_signature", sig)
		if st, _ := w.rawPost(t, "/wecom/callback?"+q.Encode(), []byte("<xml><ToUserName>")); st != http.StatusBadRequest {
			t.Errorf("malformed body: %d, want 400", st)
		}
		if st, _ := w.rawPost(t, "/wecom/callback?"+q.Encode(), []byte("not xml at all")); st != http.StatusBadRequest {
			t.Errorf("non-XML body: %d, want 400", st)
		}
		if st, _ := w.rawPost(t, "/wecom/callback", body); st != http.StatusBadRequest && st != http.StatusForbidden {
			t.Errorf("no query: %d, want 400", st)
		}
		q.Set("timestamp", "yesterday")
		if st, _ := w.rawPost(t, "/wecom/callback?"+q.Encode(), body); st != http.StatusBadRequest && st != http.StatusForbidden {
			t.Errorf("non-numeric timestamp: %d, want 400 or 403", st)
		}
		// A valid signature over a valid envelope whose ciphertext is garbage.
		junk := "QUJDREVGR0hJSktMTU5PUA=="
		env := []byte("<xml><ToUserName><![CDATA[" + ctCorpID + "]]></ToUserName><Encrypt><![CDATA[" + junk + "]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>")
		q = url.Values{"msg_signature": {ctSign(w, w.app, ts, "nn", junk)}, "timestamp": {ts}, "nonce": {"nn"}}
		if st, _ := w.rawPost(t, "/wecom/callback?"+q.Encode(), env); st != http.StatusBadRequest {
			t.Errorf("undecryptable Encrypt: %d, want 400", st)
		}
		// Another corp's message with our token and key.
		other, err := callback.New("wwotherotherother1", w.secrets[2], w.secrets[3])
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := w.callback(t, other, "/wecom/callback", in, now); st != http.StatusBadRequest {
			t.Errorf("wrong corp: %d, want 400", st)
		}
	})
}

var ctURLRe = regexp.MustCompile(`https?://[^\s"'<>)）,，。]+`)

// ctHasLink reports whether text holds exactly the link u (not merely a longer URL starting
// with it).
func ctHasLink(text, u string) bool {
	for _, m := range ctURLRe.FindAllString(text, -1) {
		if m == u {
			return true
		}
		if p, err := url.Parse(m); err == nil && p.Scheme+"://"+p.Host+p.Path == u {
			return true
		}
	}
	return false
}

func TestContractBindAndCallbacks(t *testing.T) {
	w := ctWorldShared(t)
	now := time.Now().Unix()

	// Invalid mobile, then the bind.
	p := w.newPerson("赵一", "student")
	c := w.client(t)
	page := c.casLogin(p.number)
	ctWant(t, page, http.StatusOK)
	if f := ctFindForm(page.body, "/bind/mobile"); f == nil || !f.has("mobile") {
		t.Fatalf("/bind/cas: no form /bind/mobile with input mobile:\n%s", page.body)
	}
	bad := c.submit(page, "/bind/mobile", map[string]string{"mobile": "1234"})
	ctWant(t, bad, http.StatusBadRequest)
	if ctFindForm(bad.body, "/bind/mobile") == nil {
		t.Errorf("the 400 page does not let the member retry:\n%s", bad.body)
	}
	done := c.submit(bad, "/bind/mobile", map[string]string{"mobile": p.mobile})
	ctWant(t, done, http.StatusOK)
	m, ok := w.wc.Member(p.number)
	if !ok || m.Mobile != p.mobile || m.Name != p.name || !slices.Equal(m.Department, []int64{2}) {
		t.Fatalf("WeCom member after bind: %+v %v", m, ok)
	}
	b := w.waitStatus(t, p.number, "pending")
	if b.UserID != p.number || b.Mobile != p.mobile || b.Name != p.name || b.Type != "student" || b.Department != 2 {
		t.Errorf("binding %+v", b)
	}
	if bu := w.binding(t, p.mobile); bu == nil || bu.Number != p.number {
		t.Errorf("binding get by mobile: %+v", bu)
	}

	// Already bound: a new CAS login of the same person.
	again := w.client(t).casLogin(p.number)
	ctWant(t, again, http.StatusOK)
	if ctFindForm(again.body, "/bind/mobile") != nil {
		t.Errorf("already-bound page offers the mobile form again:\n%s", again.body)
	}

	// Conflict: another person with the same mobile.
	q := w.newPerson("钱二", "student")
	c2 := w.client(t)
	cp := c2.casLogin(q.number)
	ctWant(t, cp, http.StatusOK)
	conflict := c2.submit(cp, "/bind/mobile", map[string]string{"mobile": p.mobile})
	ctWant(t, conflict, http.StatusConflict)
	if ctFindForm(conflict.body, "/bind/migrate/code") != nil {
		t.Errorf("conflict with someone else's mobile offers 换绑:\n%s", conflict.body)
	}
	if _, ok := w.wc.Member(q.number); ok {
		t.Errorf("a member was created for the refused bind")
	}

	// Refused identity and invalid ticket.
	alum := w.newPerson("孙三", "alumni")
	ctWant(t, w.client(t).casLogin(alum.number), http.StatusForbidden)
	ctWant(t, w.client(t).get("/bind/cas?ticket=ST-bogus"), http.StatusUnauthorized)

	// Activation by subscribe: once, and a retry does nothing more.
	sub := ctEvent(p.number, "subscribe", "")
	if st, _ := w.callback(t, w.app, "/wecom/callback", sub, now); st != http.StatusOK {
		t.Fatalf("subscribe: %d", st)
	}
	w.waitStatus(t, p.number, "active")
	if st, _ := w.callback(t, w.app, "/wecom/callback", sub, now); st != http.StatusOK {
		t.Fatalf("subscribe retry: %d", st)
	}
	// The same activation reported by update_user too.
	if st, _ := w.callback(t, w.contacts, "/wecom/contacts", ctChange("update_user", p.number, func(in *app.Inbound) { in.Status = 1 }), now); st != http.StatusOK {
		t.Fatalf("update_user: %d", st)
	}
	w.waitWelcomes(t, p.number, 1)

	// Activation by change_contact update_user Status 1 on the contacts server, with a retry.
	r := w.newPerson("李四", "staff")
	w.client(t).bind(r)
	w.waitStatus(t, r.number, "pending")
	if b := w.binding(t, r.number); b.Department != 3 || b.Type != "staff" {
		t.Errorf("staff binding: %+v", b)
	}
	up := ctChange("update_user", r.number, func(in *app.Inbound) { in.Status = 1 })
	for range 2 {
		if st, body := w.callback(t, w.contacts, "/wecom/contacts", up, now); st != http.StatusOK || body != "" {
			t.Fatalf("update_user Status 1: %d %q", st, body)
		}
	}
	w.waitStatus(t, r.number, "active")
	w.waitWelcomes(t, r.number, 1)

	// change_contact on the app callback too.
	s := w.newPerson("周五", "student")
	w.client(t).bind(s)
	if st, _ := w.callback(t, w.app, "/wecom/callback", ctChange("update_user", s.number, func(in *app.Inbound) { in.Status = 1 }), now); st != http.StatusOK {
		t.Fatalf("change_contact on /wecom/callback: %d", st)
	}
	w.waitStatus(t, s.number, "active")
	w.waitWelcomes(t, s.number, 1)

	// NewUserID.
	newID := "renamed" + s.number
	if st, _ := w.callback(t, w.contacts, "/wecom/contacts", ctChange("update_user", s.number, func(in *app.Inbound) { in.NewUserID = newID }), now); st != http.StatusOK {
		t.Fatalf("update_user NewUserID: %d", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b := w.binding(t, s.number)
		if b.UserID == newID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after NewUserID the binding is %+v", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b := w.binding(t, newID); b == nil || b.Number != s.number {
		t.Errorf("binding get by the new userid: %+v", b)
	}

	// A userid change of r in the same second as its activation is a different event.
	staffID := "staff-" + r.number
	ren := ctChange("update_user", r.number, func(in *app.Inbound) { in.NewUserID = staffID; in.CreateTime = up.CreateTime })
	if st, _ := w.callback(t, w.contacts, "/wecom/contacts", ren, now); st != http.StatusOK {
		t.Fatalf("update_user NewUserID: %d", st)
	}
	if b := w.binding(t, r.number); b.UserID != staffID {
		t.Errorf("a rename in the same second as the activation was taken for a retry: %+v", b)
	}

	// delete_user → unbound; a later Status 1 leaves it unbound.
	del := ctChange("delete_user", staffID, nil)
	if st, _ := w.callback(t, w.contacts, "/wecom/contacts", del, now); st != http.StatusOK {
		t.Fatalf("delete_user: %d", st)
	}
	w.waitStatus(t, r.number, "unbound")
	if st, _ := w.callback(t, w.contacts, "/wecom/contacts", ctChange("update_user", staffID, func(in *app.Inbound) { in.Status = 1; in.CreateTime++ }), now); st != http.StatusOK {
		t.Fatalf("update_user after delete: %d", st)
	}
	time.Sleep(300 * time.Millisecond)
	if b := w.binding(t, r.number); b.Status != "unbound" {
		t.Errorf("an unbound binding was reactivated: %+v", b)
	}
	w.waitWelcomes(t, r.number, 1)
	if n := w.welcomes(staffID); n != 0 {
		t.Errorf("%d welcomes after delete and Status 1", n)
	}
}

func TestContractMigrate(t *testing.T) {
	w := ctWorldShared(t)
	old := w.newPerson("王六", "student")
	w.client(t).bind(old)
	if err := w.wc.Join(old.number); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.callback(t, w.app, "/wecom/callback", ctEvent(old.number, "subscribe", ""), time.Now().Unix()); st != http.StatusOK {
		t.Fatalf("subscribe: %d", st)
	}
	w.waitStatus(t, old.number, "active")
	newer := w.newPerson("王六", "student")
	c := w.client(t)
	page := c.casLogin(newer.number)
	ctWant(t, page, http.StatusOK)
	conflict := c.submit(page, "/bind/mobile", map[string]string{"mobile": old.mobile})
	ctWant(t, conflict, http.StatusConflict)
	n := w.sms.count()
	codePage := c.submit(conflict, "/bind/migrate/code", nil)
	ctWant(t, codePage, http.StatusOK)
	if f := ctFindForm(codePage.body, "/bind/migrate"); f == nil || !f.has("sms_code") {
		t.Fatalf("no form /bind/migrate with sms_code:\n%s", codePage.body)
	}
	code := w.sms.code(t, n, old.mobile, "migrate")
	wrong := c.submit(codePage, "/bind/migrate", map[string]string{"sms_code": ctWrongCode(code)})
	ctWant(t, wrong, http.StatusBadRequest)
	if b := w.binding(t, old.number); b.Status != "active" {
		t.Errorf("a wrong code changed the old binding: %+v", b)
	}
	form := codePage
	if ctFindForm(wrong.body, "/bind/migrate") != nil {
		form = wrong
	}
	done := c.submit(form, "/bind/migrate", map[string]string{"sms_code": code})
	ctWant(t, done, http.StatusOK)
	if b := w.binding(t, old.number); b.Status != "migrated" {
		t.Errorf("old binding after 换绑: %+v", b)
	}
	b := w.binding(t, newer.number)
	if b == nil || b.Mobile != old.mobile || (b.Status != "pending" && b.Status != "active") {
		t.Errorf("new binding after 换绑: %+v", b)
	}
	if _, ok := w.wc.Member(old.number); ok {
		t.Errorf("the old member still exists")
	}
	if m, ok := w.wc.Member(newer.number); !ok || m.Mobile != old.mobile {
		t.Errorf("the new member: %+v %v", m, ok)
	}
	// A replay of the finished flow: no 5xx (the client checks every answer), nothing undone.
	c.submit(form, "/bind/migrate", map[string]string{"sms_code": code})
	if b := w.binding(t, newer.number); b == nil || b.Status == "unbound" || b.Status == "migrated" {
		t.Errorf("new binding after a replayed 换绑: %+v", b)
	}
}

// ctWrongCode returns a 6-digit code different from code.
func ctWrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

func TestContractVerify(t *testing.T) {
	w := ctWorldShared(t)
	p := w.newPerson("吴七", "student")
	w.client(t).bind(p)
	c := w.client(t)
	page := c.get("/verify?code=" + url.QueryEscape(w.wc.IssueTfaCode(p.number)))
	ctWant(t, page, http.StatusOK)
	if f := ctFindForm(page.body, "/verify/sms"); f == nil || !f.has("mobile") {
		t.Fatalf("/verify: no form /verify/sms with mobile:\n%s", page.body)
	}
	mismatch := c.submit(page, "/verify/sms", map[string]string{"mobile": "13911112222"})
	ctWant(t, mismatch, http.StatusBadRequest)
	n := w.sms.count()
	codePage := c.submit(page, "/verify/sms", map[string]string{"mobile": p.mobile})
	ctWant(t, codePage, http.StatusOK)
	if f := ctFindForm(codePage.body, "/verify/confirm"); f == nil || !f.has("sms_code") {
		t.Fatalf("no form /verify/confirm with sms_code:\n%s", codePage.body)
	}
	code := w.sms.code(t, n, p.mobile, "verify")
	wrong := c.submit(codePage, "/verify/confirm", map[string]string{"sms_code": ctWrongCode(code)})
	ctWant(t, wrong, http.StatusBadRequest)
	ctWant(t, c.submit(codePage, "/verify/confirm", map[string]string{"sms_code": code}), http.StatusOK)
	if m, _ := w.wc.Member(p.number); m.Status != 1 {
		t.Errorf("member status after verification: %d, want 1", m.Status)
	}

	// Out of order and bad input: 4xx, never 5xx.
	// Without a code, /verify starts WeCom OAuth itself (a menu link).
	vr := w.client(t).do(http.MethodGet, "/verify", nil)
	if vr.status == http.StatusFound {
		ctCheckOAuthRedirect(t, vr.header.Get("Location"), w.base+"/verify")
	} else {
		ctWant4xx(t, vr)
	}
	ctWant4xx(t, w.client(t).get("/verify?code=bogus"))
	fresh := w.client(t)
	start := fresh.get("/bind")
	ctWant4xx(t, fresh.do(http.MethodPost, "/verify/confirm", url.Values{"csrf_token": {ctHidden(start.body, "csrf_token")}, "sms_code": {"123456"}}))
	ctWant4xx(t, fresh.do(http.MethodPost, "/verify/sms", url.Values{"csrf_token": {ctHidden(start.body, "csrf_token")}, "mobile": {p.mobile}}))
}

// ctHidden returns the value of the first hidden input name on page.
func ctHidden(page, name string) string {
	for _, f := range ctForms(page) {
		for _, in := range f.inputs {
			if in.name == name && in.typ == "hidden" {
				return in.value
			}
		}
	}
	return ""
}

func TestContractUnbindAndMe(t *testing.T) {
	w := ctWorldShared(t)
	p := w.newPerson("郑八", "student")
	w.client(t).bind(p)

	me := w.client(t).oauth("/me", p.number)
	ctWant(t, me, http.StatusOK)
	if !strings.Contains(me.body, p.number) {
		t.Errorf("/me does not show the number:\n%s", me.body)
	}
	if strings.Contains(me.body, p.mobile) {
		t.Errorf("/me shows the whole mobile")
	}

	c := w.client(t)
	show := c.oauth("/unbind", p.number)
	ctWant(t, show, http.StatusOK)
	if ctFindForm(show.body, "/unbind/sms") == nil {
		t.Fatalf("/unbind: no form /unbind/sms:\n%s", show.body)
	}
	n := w.sms.count()
	codePage := c.submit(show, "/unbind/sms", nil)
	ctWant(t, codePage, http.StatusOK)
	if f := ctFindForm(codePage.body, "/unbind/confirm"); f == nil || !f.has("sms_code") {
		t.Fatalf("no form /unbind/confirm with sms_code:\n%s", codePage.body)
	}
	code := w.sms.code(t, n, p.mobile, "unbind")
	ctWant(t, c.submit(codePage, "/unbind/confirm", map[string]string{"sms_code": ctWrongCode(code)}), http.StatusBadRequest)
	ctWant(t, c.submit(codePage, "/unbind/confirm", map[string]string{"sms_code": code}), http.StatusOK)
	if _, ok := w.wc.Member(p.number); ok {
		t.Errorf("member still exists after unbind")
	}
	if b := w.binding(t, p.number); b.Status != "unbound" {
		t.Errorf("binding after unbind: %+v", b)
	}
	// Unbound: may bind again.
	ctWant(t, w.client(t).casLogin(p.number), http.StatusOK)

	// No binding → 404.
	ctWant(t, w.client(t).oauth("/unbind", "nobody-here"), http.StatusNotFound)

	// Out of order.
	ctWant4xx(t, w.client(t).get("/unbind?code=bogus&state=nope"))
	oc := w.client(t)
	r := oc.do(http.MethodGet, "/unbind", nil)
	ctWant(t, r, http.StatusFound)
	ctWant4xx(t, oc.get("/unbind?code=bogus&state="+url.QueryEscape(ctCheckOAuthRedirect(t, r.header.Get("Location"), w.base+"/unbind"))))
	ctWant4xx(t, w.client(t).get("/unbind?code="+w.wc.IssueOAuthCode(p.number)+"&state=forged"))
}

func TestContractCSRFAndOrder(t *testing.T) {
	w := ctWorldShared(t)
	p := w.newPerson("冯九", "student")
	c := w.client(t)
	page := c.casLogin(p.number)
	ctWant(t, page, http.StatusOK)
	ctWant(t, c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile}, "csrf_token"), http.StatusForbidden)
	ctWant(t, c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile, "csrf_token": "forged" + ctRandKey(40)}), http.StatusForbidden)
	if _, ok := w.wc.Member(p.number); ok {
		t.Errorf("a POST without CSRF created a member")
	}
	// Still works with the token.
	ctWant(t, c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile}), http.StatusOK)

	// Steps out of order: a flow at the mobile step, a valid CSRF token, POSTs of other steps.
	oo := w.client(t)
	at := oo.casLogin(w.newPerson("陈十", "student").number)
	ctWant(t, at, http.StatusOK)
	tok := ctHidden(at.body, "csrf_token")
	if tok == "" {
		t.Fatalf("the /bind/mobile form has no hidden csrf_token:\n%s", at.body)
	}
	for _, path := range []string{"/bind/migrate/code", "/bind/migrate", "/verify/sms", "/verify/confirm", "/unbind/sms", "/unbind/confirm"} {
		ctWant4xx(t, oo.do(http.MethodPost, path, url.Values{"csrf_token": {tok}, "mobile": {"13900001111"}, "sms_code": {"123456"}}))
	}
	// The flow still works after the detours.
	ctWant(t, oo.submit(at, "/bind/mobile", map[string]string{"mobile": "13900009999"}), http.StatusOK)
	// A replay of the finished step: no 5xx (the client checks every answer).
	oo.submit(at, "/bind/mobile", map[string]string{"mobile": "13900009999"})

	ctWant4xx(t, w.client(t).get("/bind/cas"))
	// An expired/forged flow cookie.
	jc := w.client(t)
	u, _ := url.Parse(w.base)
	for _, name := range []string{"wecampus_flow", "flow", "wecampus_csrf"} {
		jc.hc.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: "garbage" + ctRandKey(30), Path: "/"}})
	}
	ctWant4xx(t, jc.do(http.MethodPost, "/bind/mobile", url.Values{"mobile": {"13900001111"}}))
	if r := jc.get("/bind"); r.status != http.StatusOK {
		t.Errorf("/bind with garbage cookies: %d", r.status)
	}
}

func TestContractCLI(t *testing.T) {
	w := ctWorldShared(t)
	p := w.newPerson("褚一一", "student")
	w.client(t).bind(p)

	b := w.binding(t, p.number)
	if b == nil || b.Number != p.number || b.Status != "pending" {
		t.Fatalf("binding get: %+v", b)
	}
	if r := w.cli(t, nil, "binding", "get", "99999999999", "--json"); r.code != 3 {
		t.Errorf("binding get unknown: exit %d, want 3", r.code)
	}
	if r := w.cli(t, nil, "binding", "get", "99999999999"); r.code != 3 {
		t.Errorf("binding get unknown (text): exit %d, want 3", r.code)
	}
	if r := w.cli(t, nil, "binding", "get", p.number); r.code != 0 || !strings.Contains(r.stdout, p.number) {
		t.Errorf("binding get (text): exit %d\n%s", r.code, r.stdout)
	}

	r := w.cli(t, nil, "binding", "list", "--csv")
	if r.code != 0 {
		t.Fatalf("binding list --csv: exit %d %s", r.code, r.stderr)
	}
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("binding list --csv: %v\n%s", err, r.stdout)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, f := range []string{"number", "userid", "mobile", "name", "type", "department", "status", "created_at", "updated_at"} {
		if _, ok := col[f]; !ok {
			t.Errorf("CSV header %v lacks %q", rows[0], f)
		}
	}
	found := false
	for _, row := range rows[1:] {
		if len(row) != len(rows[0]) {
			t.Fatalf("CSV row %v has %d fields, header %d", row, len(row), len(rows[0]))
		}
		if row[col["number"]] == p.number {
			found = true
			if _, err := time.Parse(time.RFC3339, row[col["created_at"]]); err != nil {
				t.Errorf("CSV created_at %q: %v", row[col["created_at"]], err)
			}
		}
	}
	if !found {
		t.Errorf("binding list --csv lacks %s", p.number)
	}

	r = w.cli(t, nil, "binding", "list", "--status", "pending", "--csv")
	rows, err = csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if r.code != 0 || err != nil || len(rows) < 2 {
		t.Fatalf("binding list --status pending --csv: exit %d %v\n%s", r.code, err, r.stdout)
	}
	for _, row := range rows[1:] {
		if row[col["status"]] != "pending" {
			t.Errorf("--status pending lists %v", row)
		}
	}
	if r := w.cli(t, nil, "binding", "list", "--status", "pending"); r.code != 0 || !strings.Contains(r.stdout, p.number) {
		t.Errorf("binding list --status pending: exit %d\n%s", r.code, r.stdout)
	}
	if r := w.cli(t, nil, "binding", "list", "--status", "bogus"); r.code == 0 {
		t.Errorf("binding list --status bogus: exit 0")
	}
	if r := w.cli(t, nil, "binding", "list"); r.code != 0 {
		t.Errorf("binding list: exit %d", r.code)
	}

	// config check: all good, one line per check.
	r = w.cli(t, nil, "config", "check")
	if r.code != 0 {
		t.Fatalf("config check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 5 {
		t.Errorf("config check prints %d lines, want one per check (config, database, two gettoken, CAS):\n%s", len(lines), r.stdout)
	}

	// migrate on the live database.
	if r := w.cli(t, nil, "migrate"); r.code != 0 {
		t.Errorf("migrate: exit %d\n%s", r.code, r.stderr)
	}
}

func TestContractConfigErrors(t *testing.T) {
	w := ctWorldShared(t)
	cfg, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	write := func(t *testing.T, text string) string {
		p := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A bad secret: config check fails on that line only and prints no secret.
	bad := strings.Replace(string(cfg), w.secrets[0], "app-wrongwrongwrong", 1)
	r := ctCLI(t, w.secrets, nil, "--config", write(t, bad), "config", "check")
	if r.code == 0 {
		t.Errorf("config check with a bad app secret: exit 0\n%s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, "app-wrongwrongwrong") {
		t.Errorf("config check prints the wrong secret")
	}

	// A 42-character aes key: non-zero, one line naming the key; for serve and config check.
	short := strings.Replace(string(cfg), w.secrets[3], w.secrets[3][:42], 1)
	path := write(t, short)
	for _, args := range [][]string{{"serve"}, {"config", "check"}, {"migrate"}} {
		r := ctCLI(t, w.secrets, nil, append([]string{"--config", path}, args...)...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if args[0] == "config" { // the report goes to stdout, one line per check
			lines = slices.DeleteFunc(strings.Split(strings.TrimSpace(r.stdout+r.stderr), "\n"), func(l string) bool {
				return !strings.Contains(l, "callback_aes_key")
			})
		}
		if r.code == 0 || len(lines) != 1 || !strings.Contains(lines[0], "wecom.callback_aes_key") {
			t.Errorf("%v with a 42-character aes key: exit %d, stderr:\n%s", args, r.code, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, w.secrets[3][:42]) {
			t.Errorf("%v prints the aes key", args)
		}
	}

	// Short secrets that occur inside the message: the key name stays readable and every
	// redaction is whole.
	tiny := strings.Replace(short, w.secrets[0], "e", 1)
	tiny = strings.Replace(tiny, w.secrets[1], "call", 1)
	r = ctCLI(t, w.secrets, nil, "--config", write(t, tiny), "serve")
	if line := strings.TrimSpace(r.stderr); r.code == 0 || !strings.Contains(line, "wecom.callback_aes_key") ||
		strings.Count(line, "<") != strings.Count(line, "<redacted>") || strings.Contains(line, "\n") {
		t.Errorf("serve with short secrets and a 42-character aes key: exit %d, stderr:\n%s", r.code, r.stderr)
	}

	// Unknown key, non-absolute base_url, missing required key.
	for name, text := range map[string]string{
		"server.colour":    strings.Replace(string(cfg), "server:\n", "server:\n  colour: \"blue\"\n", 1),
		"server.base_url":  regexp.MustCompile(`base_url: "http://[^"]+"`).ReplaceAllString(string(cfg), `base_url: "wecampus.example.edu.cn"`),
		"wecom.app_secret": regexp.MustCompile(`  app_secret: "[^"]+"\n`).ReplaceAllString(string(cfg), ""),
	} {
		r := ctCLI(t, w.secrets, nil, "--config", write(t, text), "serve")
		if r.code == 0 || !strings.Contains(r.stderr, name) {
			t.Errorf("serve with a bad %s: exit %d, stderr:\n%s", name, r.code, r.stderr)
		}
	}

	// One contacts key without the other.
	half := regexp.MustCompile(`  contacts_callback_aes_key: "[^"]+"\n`).ReplaceAllString(string(cfg), "")
	if r := ctCLI(t, w.secrets, nil, "--config", write(t, half), "serve"); r.code == 0 || !strings.Contains(r.stderr, "contacts_callback") {
		t.Errorf("serve with only the contacts token: exit %d, stderr:\n%s", r.code, r.stderr)
	}

	// WECAMPUS_CONFIG names the file.
	if r := ctCLI(t, w.secrets, []string{"WECAMPUS_CONFIG=" + w.cfgPath}, "binding", "list", "--csv"); r.code != 0 || !strings.HasPrefix(r.stdout, "number,") {
		t.Errorf("WECAMPUS_CONFIG: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// migrate on a fresh database.
	fresh := strings.Replace(string(cfg), filepath.Join(w.dir, "wecampus.db"), filepath.Join(t.TempDir(), "fresh.db"), 1)
	if r := ctCLI(t, w.secrets, nil, "--config", write(t, fresh), "migrate"); r.code != 0 {
		t.Errorf("migrate on a fresh database: exit %d\n%s", r.code, r.stderr)
	}
}

// TestContractServeStop runs a second serve whose address comes from WECAMPUS_SERVER_ADDR and
// stops it with SIGTERM while a request waits on a slow CAS: the request completes, exit 0.
func TestContractServeStop(t *testing.T) {
	ctBinary(t)
	w, err := newCtWorld(t, ctWorldOptions{casLatency: 1500 * time.Millisecond, envAddr: true, noContacts: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if err := w.waitReady(); err != nil {
		t.Fatal(err) // the env address is the one listening
	}
	// A fresh service: no drift.
	if r := w.cli(t, nil, "reconcile"); r.code != 0 {
		t.Errorf("reconcile without bindings or members: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Without contacts keys, /wecom/contacts is 404.
	if st, _, _ := ctGET(t, w.base+"/wecom/contacts?msg_signature=a&timestamp=1&nonce=b&echostr=c"); st != http.StatusNotFound {
		t.Errorf("GET /wecom/contacts without contacts keys: %d, want 404", st)
	}
	if st, _ := w.rawPost(t, "/wecom/contacts?msg_signature=a&timestamp=1&nonce=b", []byte("<xml/>")); st != http.StatusNotFound {
		t.Errorf("POST /wecom/contacts without contacts keys: %d, want 404", st)
	}
	c := w.client(t)
	start := c.do(http.MethodGet, "/bind/login", nil)
	ctWant(t, start, http.StatusFound)
	p := w.newPerson("卫十二", "student")
	ticket := w.cas.IssueTicket(p.number, w.base+"/bind/cas")
	type answer struct {
		r   *ctResp
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, w.base+"/bind/cas?ticket="+url.QueryEscape(ticket), nil)
		resp, err := c.hc.Do(req)
		if err != nil {
			ch <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- answer{r: &ctResp{status: resp.StatusCode, body: string(b)}, err: err}
	}()
	time.Sleep(400 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- w.stop() }()
	a := <-ch
	if a.err != nil {
		t.Fatalf("in-flight request failed during shutdown: %v", a.err)
	}
	if a.r.status != http.StatusOK || ctFindForm(a.r.body, "/bind/mobile") == nil {
		t.Errorf("in-flight request: %d\n%s", a.r.status, a.r.body)
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve after SIGTERM: %v\n%s", err, w.stderr.String())
	}
	if w.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("serve exit code %d", w.cmd.ProcessState.ExitCode())
	}
}

// TestContractMore covers the corners: a /bind/cas without /bind/login, cookies, numbers and
// mobiles already held in WeCom, visitors, rate limits and attempts, callbacks from strangers,
// the replay window's inside, and the admin commands.
func TestContractMore(t *testing.T) {
	w := ctWorldShared(t)
	now := time.Now().Unix()

	t.Run("cas without login", func(t *testing.T) {
		p := w.newPerson("蒋十三", "student")
		c := w.client(t)
		ticket := w.cas.IssueTicket(p.number, w.base+"/bind/cas")
		page := c.get("/bind/cas?ticket=" + url.QueryEscape(ticket))
		ctWant(t, page, http.StatusOK)
		ctWant(t, c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile}), http.StatusOK)
	})

	t.Run("cookies", func(t *testing.T) {
		p := w.newPerson("沈十四", "student")
		c := w.client(t)
		c.get("/bind")
		r := c.do(http.MethodGet, "/bind/login", nil)
		ticket := w.cas.IssueTicket(p.number, w.base+"/bind/cas")
		r = c.do(http.MethodGet, "/bind/cas?ticket="+url.QueryEscape(ticket), nil)
		ctWant(t, r, http.StatusOK)
		resp := &http.Response{Header: r.header}
		flowOK := false
		for _, ck := range resp.Cookies() {
			if !ck.HttpOnly || ck.SameSite == http.SameSiteDefaultMode {
				t.Errorf("cookie %s: HttpOnly %v SameSite %v", ck.Name, ck.HttpOnly, ck.SameSite)
			}
			if ck.MaxAge > 0 && ck.MaxAge <= 900 {
				flowOK = true
			}
			if strings.Contains(ck.Value, p.number) || strings.Contains(ck.Value, p.name) {
				t.Errorf("cookie %s is readable: %s", ck.Name, ck.Value)
			}
		}
		if !flowOK {
			t.Errorf("no cookie of /bind/cas expires within 15 minutes: %q", r.header.Values("Set-Cookie"))
		}
	})

	t.Run("held in WeCom", func(t *testing.T) {
		// A mobile held by a member created in the admin console.
		p := w.newPerson("韩十五", "student")
		if err := w.wc.AddMember(wecomtest.Member{UserID: "console-" + p.number, Name: "别人", Mobile: p.mobile, Department: []int64{1}}); err != nil {
			t.Fatal(err)
		}
		c := w.client(t)
		page := c.casLogin(p.number)
		ctWant(t, page, http.StatusOK)
		ctWant(t, c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile}), http.StatusConflict)

		// The number's userid held by somebody else with another mobile.
		q := w.newPerson("杨十六", "student")
		if err := w.wc.AddMember(wecomtest.Member{UserID: q.number, Name: "另一个人", Mobile: "13700000001", Department: []int64{1}}); err != nil {
			t.Fatal(err)
		}
		c = w.client(t)
		page = c.casLogin(q.number)
		ctWant(t, page, http.StatusOK)
		r := c.submit(page, "/bind/mobile", map[string]string{"mobile": q.mobile})
		if r.status != http.StatusConflict {
			t.Errorf("bind over someone else's member: %d, want 409:\n%.400s", r.status, r.body)
		}
		if m, _ := w.wc.Member(q.number); m.Mobile != "13700000001" || m.Name != "另一个人" {
			t.Errorf("someone else's member was changed: %+v", m)
		}
	})

	t.Run("visitors", func(t *testing.T) {
		// Not a member: OAuth yields an openid only.
		c := w.client(t)
		r := c.do(http.MethodGet, "/me", nil)
		ctWant(t, r, http.StatusFound)
		state := ctCheckOAuthRedirect(t, r.header.Get("Location"), w.base+"/me")
		// /me of a visitor or of a member without binding: any page but a 5xx (not fixed by the
		// contract; the service shows "no binding" with a link to /bind).
		c.get("/me?code=" + w.wc.IssueOAuthCodeForOpenID("oOPENID") + "&state=" + state)
		w.client(t).oauth("/me", "nobody-at-all")
		// /unbind with a code but no state.
		ctWant4xx(t, w.client(t).get("/unbind?code="+w.wc.IssueOAuthCode("nobody-at-all")))
		// Join verification of someone without a binding.
		ctWant4xx(t, w.client(t).get("/verify?code="+w.wc.IssueTfaCode("stranger")))
	})

	t.Run("sms limits", func(t *testing.T) {
		p := w.newPerson("朱十七", "student")
		w.client(t).bind(p)
		c := w.client(t)
		show := c.oauth("/unbind", p.number)
		ctWant(t, show, http.StatusOK)
		n := w.sms.count()
		codePage := c.submit(show, "/unbind/sms", nil)
		ctWant(t, codePage, http.StatusOK)
		code := w.sms.code(t, n, p.mobile, "unbind")
		// A second send within the cooldown: refused or answered without a new SMS, no 5xx.
		again := c.submit(show, "/unbind/sms", nil)
		if again.status >= 500 {
			t.Fatalf("resend: %d", again.status)
		}
		time.Sleep(100 * time.Millisecond)
		if got := w.sms.count() - n; got != 1 {
			t.Errorf("%d SMS within the cooldown, want 1", got)
		}
		for range 5 {
			ctWant(t, c.submit(codePage, "/unbind/confirm", map[string]string{"sms_code": ctWrongCode(code)}), http.StatusBadRequest)
		}
		ctWant4xx(t, c.submit(codePage, "/unbind/confirm", map[string]string{"sms_code": code}))
		if b := w.binding(t, p.number); b.Status == "unbound" {
			t.Errorf("the code worked after 5 wrong attempts")
		}
		if _, ok := w.wc.Member(p.number); !ok {
			t.Errorf("the member was deleted after 5 wrong attempts")
		}
	})

	t.Run("verify then subscribe", func(t *testing.T) {
		p := w.newPerson("秦十八", "student")
		w.client(t).bind(p)
		c := w.client(t)
		page := c.get("/verify?code=" + url.QueryEscape(w.wc.IssueTfaCode(p.number)))
		n := w.sms.count()
		codePage := c.submit(page, "/verify/sms", map[string]string{"mobile": p.mobile})
		ctWant(t, codePage, http.StatusOK)
		ctWant(t, c.submit(codePage, "/verify/confirm", map[string]string{"sms_code": w.sms.code(t, n, p.mobile, "verify")}), http.StatusOK)
		// WeCom then reports the join: one activation, one welcome.
		if st, _ := w.callback(t, w.app, "/wecom/callback", ctEvent(p.number, "subscribe", ""), now); st != http.StatusOK {
			t.Fatal(st)
		}
		if st, _ := w.callback(t, w.contacts, "/wecom/contacts", ctChange("update_user", p.number, func(in *app.Inbound) { in.Status = 1 }), now); st != http.StatusOK {
			t.Fatal(st)
		}
		w.waitStatus(t, p.number, "active")
		w.waitWelcomes(t, p.number, 1)
		for _, m := range w.wc.Messages() {
			if m.ToUser == p.number && m.AgentID != ctAgentID {
				t.Errorf("welcome sent with agentid %d", m.AgentID)
			}
		}
	})

	t.Run("strangers and window", func(t *testing.T) {
		for _, in := range []*app.Inbound{
			ctEvent("no-binding", "subscribe", ""),
			ctEvent("no-binding", "unsubscribe", ""),
			ctChange("update_user", "no-binding", func(in *app.Inbound) { in.Status = 1 }),
			ctChange("create_user", "no-binding", nil),
			ctChange("delete_user", "no-binding", nil),
			ctChange("update_user", "no-binding", func(in *app.Inbound) { in.NewUserID = "still-none" }),
		} {
			if st, body := w.callback(t, w.contacts, "/wecom/contacts", in, now); st != http.StatusOK || body != "" {
				t.Errorf("%s/%s of a stranger: %d %q", in.Event, in.ChangeType, st, body)
			}
		}
		in := ctEvent("kw-user", "click", "HELP")
		for _, d := range []time.Duration{-4 * time.Minute, 4 * time.Minute} {
			if st, body := w.callback(t, w.app, "/wecom/callback", in, time.Now().Add(d).Unix()); st != http.StatusOK || body == "" {
				t.Errorf("timestamp %v away (inside callback_max_age): %d %q", d, st, body)
			}
		}
		if w.welcomes("no-binding") != 0 {
			t.Errorf("a welcome went to a member without binding")
		}
	})

	t.Run("admin commands", func(t *testing.T) {
		p := w.newPerson("尤十九", "student")
		w.client(t).bind(p)
		if r := w.cli(t, nil, "binding", "unbind", p.number, "--reason", "测试"); r.code != 0 {
			t.Fatalf("binding unbind: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if b := w.binding(t, p.number); b.Status != "unbound" {
			t.Errorf("after binding unbind: %+v", b)
		}
		if _, ok := w.wc.Member(p.number); ok {
			t.Errorf("binding unbind left the member")
		}
		if r := w.cli(t, nil, "menu", "sync"); r.code != 0 {
			t.Fatalf("menu sync: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		var urls []string
		var walk func(bs []app.MenuButton)
		walk = func(bs []app.MenuButton) {
			for _, b := range bs {
				if b.URL != "" {
					urls = append(urls, b.URL)
				}
				walk(b.SubButton)
			}
		}
		walk(w.wc.Menu(ctAgentID))
		for _, want := range []string{"/bind", "/verify", "/me", "/unbind"} {
			if !slices.Contains(urls, w.base+want) {
				t.Errorf("menu lacks %s%s: %v", w.base, want, urls)
			}
		}
		if r := w.cli(t, nil, "menu", "show"); r.code != 0 || !strings.Contains(r.stdout, "注册绑定") {
			t.Errorf("menu show: exit %d\n%s", r.code, r.stdout)
		}
		// A member deleted in the admin console without a callback: drift, and --fix unbinds.
		q := w.newPerson("许二十", "student")
		w.client(t).bind(q)
		w.deleteMember(t, q.number)
		if r := w.cli(t, nil, "reconcile"); r.code != 4 || !strings.Contains(r.stdout, q.number) {
			t.Errorf("reconcile with drift: exit %d, want 4\n%s%s", r.code, r.stdout, r.stderr)
		}
		if b := w.binding(t, q.number); b.Status != "pending" {
			t.Errorf("reconcile without --fix changed %+v", b)
		}
		if r := w.cli(t, nil, "reconcile", "--fix"); r.code != 4 {
			t.Errorf("reconcile --fix: exit %d, want 4 (drift found)\n%s%s", r.code, r.stdout, r.stderr)
		}
		if b := w.binding(t, q.number); b.Status != "unbound" {
			t.Errorf("reconcile --fix left %+v", b)
		}
	})
}

// TestContractConcurrentCallbacks delivers the subscribe and update_user of several activations
// at once, each twice: every delivery 200, one activation and one welcome each.
func TestContractConcurrentCallbacks(t *testing.T) {
	w := ctWorldShared(t)
	var ps []ctPerson
	for range 3 {
		p := w.newPerson("并发", "student")
		w.client(t).bind(p)
		ps = append(ps, p)
	}
	now := time.Now().Unix()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for _, p := range ps {
		sub := ctEvent(p.number, "subscribe", "")
		up := ctChange("update_user", p.number, func(in *app.Inbound) { in.Status = 1 })
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var st int
				if i%2 == 0 {
					st, _ = w.callback(t, w.app, "/wecom/callback", sub, now)
				} else {
					st, _ = w.callback(t, w.contacts, "/wecom/contacts", up, now)
				}
				mu.Lock()
				statuses[st]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if statuses[http.StatusOK] != len(ps)*4 {
		t.Errorf("statuses of concurrent deliveries: %v", statuses)
	}
	for _, p := range ps {
		w.waitStatus(t, p.number, "active")
		w.waitWelcomes(t, p.number, 1)
	}
}

// TestContractLogs runs last: the shared service's output holds no secret and no whole mobile.
func TestContractLogs(t *testing.T) {
	w := ctWorldShared(t)
	out := w.stdout.String() + w.stderr.String()
	for _, s := range w.secrets {
		if strings.Contains(out, s) {
			t.Errorf("serve logs a secret (%.6s…)", s)
		}
	}
	for _, m := range w.sms.all() {
		if strings.Contains(out, m.Mobile) {
			t.Errorf("serve logs the whole mobile %s", m.Mobile)
		}
		if strings.Contains(out, m.Code) && len(m.Code) == 6 && strings.Contains(out, `"`+m.Code+`"`) {
			t.Errorf("serve logs an SMS code")
		}
	}
}
