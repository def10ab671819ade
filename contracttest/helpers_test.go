package contracttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wecampus/wecampus/cas/castest"
	"github.com/wecampus/wecampus/wecom/callback"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// The world the contract tests run against: a `wecampus serve` subprocess with its config, the
// WeCom and CAS simulators and the SMS gateway of CONTRACT §4, and the CLI runner.

const (
	ctCorpID   = "ww9f8e7d6c5b4a3921"
	ctAgentID  = int64(1000002)
	ctOAuthURL = "https://open.example.test"
)

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

// ctWrongCode returns a 6-digit code different from code.
func ctWrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
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
