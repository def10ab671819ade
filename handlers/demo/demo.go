// Package demo is the console of `wecampus demo`: a page at /demo that plays the parts of the
// world around the service — the person (pick a test identity of the CAS fake), WeCom (join,
// the join-verification redirect, OAuth, menu clicks, change_contact callbacks) and the SMS
// gateway (the codes the log provider "sent") — and shows what the service stored (bindings,
// audit events, the app messages it sent).
//
// Everything here talks to the service the way the real world does: callbacks are encrypted
// with the callback keys and POSTed to /wecom/callback and /wecom/contacts over HTTP, OAuth goes
// through a redirect to a page that mimics WeCom's authorize URL, and CAS logins go through the
// castest login form. The package is for the demo only; `serve` never mounts it.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/cas/castest"
	"github.com/wecampus/wecampus/wecom/callback"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// Paths of the console, relative to the service's origin.
const (
	ConsolePath = "/demo"
	// OAuthBasePath is what wecom.oauth_base points at (after the origin): the console serves
	// {OAuthBasePath}/connect/oauth2/authorize like open.weixin.qq.com does.
	OAuthBasePath = "/demo/oauth"
	authorizePath = OAuthBasePath + "/connect/oauth2/authorize"
	// webLoginPath stands in for WeCom's web login (QR) page when wecom.login_base is
	// {origin}{OAuthBasePath}: the helpdesk console offers it in a desktop browser.
	webLoginPath = OAuthBasePath + "/wwlogin/sso/login"
)

// selectedCookie remembers the test identity the person picked on the console.
const selectedCookie = "wecampus_demo_as"

// callbackRetries is how many times a callback is delivered when the service does not answer
// 200 (WeCom retries too).
const callbackRetries = 3

// Identity is a test person: an account of the CAS fake.
type Identity struct {
	Number   string // 学号/工号, the CAS username
	Password string
	Name     string
	Type     string // the CAS identity type (userType): student, staff, alumni, ...
	Mobile   string // a suggested mobile to type on the bind page
	Note     string // what this identity demonstrates, shown on the console
}

// Config is what the console needs. Service, WeCom, CAS, SMS, AppCodec and ContactsCodec are
// required.
type Config struct {
	BaseURL string // server.base_url: the origin the service, the console and the fakes share
	DataDir string // where the demo database lives, shown on the console

	Service *app.Service
	WeCom   *wecomtest.Server
	CAS     *castest.Server
	SMS     *SMSRecorder
	// Identities are added to the CAS fake by New and listed on the console.
	Identities []Identity
	// Menu is the app menu, resolved against BaseURL (app.BuildMenu).
	Menu []app.MenuButton

	// AppCodec and ContactsCodec play WeCom's side of /wecom/callback and /wecom/contacts: built
	// with the same corp id, tokens and keys as the service's.
	AppCodec      *callback.Codec
	ContactsCodec *callback.Codec
	AgentID       int64
	CorpID        string

	// Admin, when its UserID is set, is a WeCom member added at start (already joined): the
	// demo's helpdesk operator (admin.operators), offered first when /admin asks who signs in.
	Admin wecomtest.Member

	// Client posts callbacks to the service; nil means a client with a 10 s timeout.
	Client *http.Client
	Log    *slog.Logger
}

// Console serves the demo console, the fake WeCom authorize page, and delivers the simulator's
// change events to the service as encrypted change_contact callbacks.
type Console struct {
	cfg    Config
	base   string
	client *http.Client
	log    *slog.Logger
	pages  *pages
	mux    *http.ServeMux

	ctx    context.Context // ends with Close: pending deliveries give up
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	delivered map[string]chan struct{} // userid -> closed when its latest change event was delivered
	callbacks []CallbackRecord
}

// CallbackRecord is one callback the console delivered to the service.
type CallbackRecord struct {
	Path   string // /wecom/callback or /wecom/contacts
	Kind   string // e.g. change_contact.update_user, click
	UserID string
	Status int // HTTP status of the service's answer; 0 when it did not answer
	At     time.Time
}

// New checks cfg, adds the identities to the CAS fake and registers the change hook with the
// WeCom simulator.
func New(cfg Config) (*Console, error) {
	var missing []string
	for name, nilv := range map[string]bool{
		"Service": cfg.Service == nil, "WeCom": cfg.WeCom == nil, "CAS": cfg.CAS == nil, "SMS": cfg.SMS == nil,
		"AppCodec": cfg.AppCodec == nil, "ContactsCodec": cfg.ContactsCodec == nil,
	} {
		if nilv {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("demo: Config.%s is required", strings.Join(missing, ", Config."))
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("demo: base URL %q is not absolute", cfg.BaseURL)
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), client: cfg.Client, log: cfg.Log,
		pages: p, delivered: map[string]chan struct{}{}}
	if c.client == nil {
		c.client = &http.Client{Timeout: 10 * time.Second}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for _, id := range cfg.Identities {
		cfg.CAS.AddUser(id.Number, id.Password, id.Name, id.Type)
	}
	if cfg.Admin.UserID != "" {
		if err := cfg.WeCom.AddMember(cfg.Admin); err != nil {
			return nil, fmt.Errorf("demo: admin member: %w", err)
		}
	}
	cfg.WeCom.OnChange(c.onChange)

	c.mux = http.NewServeMux()
	c.mux.HandleFunc("GET "+ConsolePath, c.handleConsole)
	c.mux.HandleFunc("GET "+ConsolePath+"/{$}", c.handleConsole)
	c.mux.HandleFunc("POST "+ConsolePath+"/select", c.handleSelect)
	c.mux.HandleFunc("POST "+ConsolePath+"/join", c.handleJoin)
	c.mux.HandleFunc("GET "+ConsolePath+"/verify", c.handleVerify)
	c.mux.HandleFunc("POST "+ConsolePath+"/click", c.handleClick)
	c.mux.HandleFunc("POST "+ConsolePath+"/text", c.handleText)
	c.mux.HandleFunc("GET "+authorizePath, c.handleAuthorize)
	c.mux.HandleFunc("GET "+webLoginPath, c.handleWebLogin)
	c.mux.HandleFunc("POST "+OAuthBasePath+"/pick", c.handlePick)
	c.mux.HandleFunc(ConsolePath+"/", func(w http.ResponseWriter, r *http.Request) {
		c.renderNotice(w, http.StatusNotFound, "页面不存在", "演示控制台没有这个页面。")
	})
	return c, nil
}

// Handler serves the console routes (mount it at /demo and /demo/).
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method == http.MethodPost && !c.sameOrigin(r) {
			c.renderNotice(w, http.StatusForbidden, "请求被拒绝", "该请求不是从演示控制台发起的。")
			return
		}
		c.mux.ServeHTTP(w, r)
	})
}

// Close stops delivering callbacks and waits for the deliveries in progress to end.
func (c *Console) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Callbacks returns the callbacks delivered so far, oldest first.
func (c *Console) Callbacks() []CallbackRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CallbackRecord(nil), c.callbacks...)
}

// WaitDelivered waits until the latest change event of userID was delivered (or d passed) and
// reports whether it was.
func (c *Console) WaitDelivered(userID string, d time.Duration) bool {
	c.mu.Lock()
	ch := c.delivered[strings.ToLower(userID)]
	c.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// sameOrigin refuses cross-site POSTs to the console (a browser always sends Origin on them).
func (c *Console) sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || o == c.base
}

// onChange is the simulator's hook: like WeCom, it reports the change to the 通讯录同步 event
// server a moment later, encrypted, over HTTP.
func (c *Console) onChange(ev wecomtest.ChangeEvent) {
	in := &app.Inbound{ToUser: c.cfg.CorpID, FromUser: "sys", CreateTime: time.Now().Unix(), MsgType: "event",
		Event: "change_contact", ChangeType: ev.ChangeType, UserID: ev.UserID, Status: ev.Status}
	done := make(chan struct{})
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.delivered[strings.ToLower(ev.UserID)] = done
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer close(done)
		if _, err := c.deliver(c.ctx, "/wecom/contacts", c.cfg.ContactsCodec, in); err != nil && c.ctx.Err() == nil {
			c.log.Warn("demo: change_contact callback not delivered", "userid", ev.UserID, "err", err)
		}
	}()
}

// deliver encrypts in with codec and POSTs it to path like WeCom does (msg_signature, timestamp
// and nonce in the query), retrying a few times when the service does not answer 200. It returns
// the answer's body.
func (c *Console) deliver(ctx context.Context, path string, codec *callback.Codec, in *app.Inbound) ([]byte, error) {
	var lastErr error
	for attempt := range callbackRetries {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		body, status, err := c.post(ctx, path, codec, in)
		c.record(path, in, status)
		if err == nil && status == http.StatusOK {
			return body, nil
		}
		if err == nil {
			err = fmt.Errorf("%s answered %d", path, status)
			if status >= 400 && status < 500 {
				return nil, err // refused: a retry cannot succeed
			}
		}
		lastErr = err
	}
	return nil, lastErr
}

func (c *Console) post(ctx context.Context, path string, codec *callback.Codec, in *app.Inbound) ([]byte, int, error) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := randomHex(8)
	body, sig, err := codec.EncryptEvent(callback.EventXML(in), ts, nonce)
	if err != nil {
		return nil, 0, err
	}
	q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path+"?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, resp.StatusCode, err
	}
	return out, resp.StatusCode, nil
}

func (c *Console) record(path string, in *app.Inbound, status int) {
	user := in.UserID
	if user == "" {
		user = in.FromUser
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.callbacks = append(c.callbacks, CallbackRecord{Path: path, Kind: in.Kind(), UserID: user, Status: status, At: time.Now()})
	if len(c.callbacks) > 200 {
		c.callbacks = c.callbacks[len(c.callbacks)-200:]
	}
}

// PassiveReply is what the service answered to a message or click sent from the console.
type PassiveReply struct {
	Encrypted string // the envelope as received (what WeCom would get)
	Plaintext string // the decrypted reply XML
	Content   string // the reply's text
}

// Send delivers a message or event from a member to /wecom/callback and decrypts the passive
// reply, if any.
func (c *Console) Send(ctx context.Context, in *app.Inbound) (*PassiveReply, error) {
	body, err := c.deliver(ctx, "/wecom/callback", c.cfg.AppCodec, in)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return &PassiveReply{}, nil
	}
	plain, err := c.cfg.AppCodec.OpenReply(body)
	if err != nil {
		return nil, fmt.Errorf("open passive reply: %w", err)
	}
	var msg struct {
		Content string `xml:"Content"`
	}
	if err := xml.Unmarshal(plain, &msg); err != nil {
		return nil, fmt.Errorf("parse passive reply: %w", err)
	}
	return &PassiveReply{Encrypted: string(body), Plaintext: string(plain), Content: msg.Content}, nil
}

// Click sends the menu click of key as userID and returns the passive reply.
func (c *Console) Click(ctx context.Context, userID, key string) (*PassiveReply, error) {
	return c.Send(ctx, &app.Inbound{ToUser: c.cfg.CorpID, FromUser: userID, CreateTime: time.Now().Unix(),
		MsgType: "event", Event: "click", EventKey: key, AgentID: strconv.FormatInt(c.cfg.AgentID, 10)})
}

// Text sends a text message from userID and returns the passive reply.
func (c *Console) Text(ctx context.Context, userID, content string) (*PassiveReply, error) {
	return c.Send(ctx, &app.Inbound{ToUser: c.cfg.CorpID, FromUser: userID, CreateTime: time.Now().Unix(),
		MsgType: "text", Content: content, MsgID: strconv.FormatInt(time.Now().UnixNano(), 10),
		AgentID: strconv.FormatInt(c.cfg.AgentID, 10)})
}

// identity returns the test identity with number.
func (c *Console) identity(number string) (Identity, bool) {
	for _, id := range c.cfg.Identities {
		if id.Number == number {
			return id, true
		}
	}
	return Identity{}, false
}

// userIDOf returns the WeCom userid the service gives id and the identity rule that admits it,
// or the identity rules' refusal.
func (c *Console) userIDOf(id Identity) (string, *app.IdentityRule, error) {
	rule, userID, err := c.cfg.Service.Admit(app.CASIdentity{Number: id.Number, Name: id.Name, Type: id.Type})
	if err != nil {
		return "", nil, err
	}
	return userID, rule, nil
}

// selected returns the identity picked on the console, if any.
func (c *Console) selected(r *http.Request) (Identity, bool) {
	ck, err := r.Cookie(selectedCookie)
	if err != nil {
		return Identity{}, false
	}
	return c.identity(ck.Value)
}

// selectedUserID is the WeCom userid of the selected identity, or "".
func (c *Console) selectedUserID(r *http.Request) string {
	id, ok := c.selected(r)
	if !ok {
		return ""
	}
	userID, _, err := c.userIDOf(id)
	if err != nil {
		return ""
	}
	return userID
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}
