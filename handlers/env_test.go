package handlers_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/cas"
	"github.com/wecampus/wecampus/cas/castest"
	"github.com/wecampus/wecampus/handlers"
	"github.com/wecampus/wecampus/sms"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/wecom"
	"github.com/wecampus/wecampus/wecom/callback"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// Test credentials of the two event servers (not the official vectors; those are in V1 tests).
const (
	testCorpID        = "wwcampus00000001"
	testAppToken      = "AppToken0123456789"
	testAppKey        = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	testContactsToken = "ContactsToken98765"
	testContactsKey   = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
	testBaseURL       = "https://wecampus.example.edu.cn"
	testHelpContact   = "信息化管理中心 电话 0471-6576286"
)

// env is a running wecampus HTTP layer over real parts: the real codec, app.Service, a SQLite
// store in a temporary file, and the wecom client pointed at the wecomtest simulator.
type env struct {
	t       testing.TB
	handler http.Handler
	srv     *httptest.Server // real HTTP in front of handler
	db      *store.DB
	dbPath  string
	svc     *app.Service
	sim     *wecomtest.Server
	cas     *castest.Server
	sms     *sms.Log
	baseURL string // server.base_url of this env
	reg     *prometheus.Registry
	logs    *syncBuffer

	// WeCom's side: codecs with the same credentials, used to encrypt deliveries and open replies.
	wecomApp      *callback.Codec
	wecomContacts *callback.Codec

	nonce atomic.Int64
}

type envConfig struct {
	corpID, appToken, appKey string
	noContacts               bool
	log                      io.Writer     // nil: the captured buffer only
	level                    slog.Level    // default debug; benchmarks use serve's info
	localBase                bool          // base_url is the test server's own http:// origin
	mysql                    bool          // the store is a fresh MariaDB database (TEST_MYSQL_DSN)
	wecomTimeout             time.Duration // deadline of one WeCom call; 0: the client's default
	personAttr               string        // identity.person_attribute; "": 换绑 by equal names
	trustedProxies           []string      // server.trusted_proxies
	rateLimit                int           // server.rate_limit.per_minute; 0: the default
	rateLimiter              handlers.RateLimiter
	redisUp                  func() bool // Deps.RedisUp
	fleet                    *fleetParts // a replica of a fleet: its shared database, WeCom, CAS and SMS
}

// withPersonAttribute configures identity.person_attribute: 换绑 needs equal person ids.
func withPersonAttribute(name string) envOption { return func(c *envConfig) { c.personAttr = name } }

type envOption func(*envConfig)

// withoutContacts leaves the 通讯录同步 event server unconfigured.
func withoutContacts() envOption { return func(c *envConfig) { c.noContacts = true } }

// withAppCallback sets the app callback's corp id, token and key.
func withAppCallback(corpID, token, key string) envOption {
	return func(c *envConfig) { c.corpID, c.appToken, c.appKey = corpID, token, key }
}

// withRedisUp reports the optional Redis's health through up.
func withRedisUp(up func() bool) envOption { return func(c *envConfig) { c.redisUp = up } }

// withLogLevel sets the minimum log level (serve logs at info).
func withLogLevel(l slog.Level) envOption { return func(c *envConfig) { c.level = l } }

// withLogOutput also sends the logs to w (the benchmark discards them).
func withLogOutput(w io.Writer) envOption { return func(c *envConfig) { c.log = w } }

func newEnv(tb testing.TB, opts ...envOption) *env {
	tb.Helper()
	cfg := envConfig{corpID: testCorpID, appToken: testAppToken, appKey: testAppKey, level: slog.LevelDebug}
	for _, o := range opts {
		o(&cfg)
	}
	ctx := context.Background()
	e := &env{t: tb, logs: &syncBuffer{}}
	var w io.Writer = e.logs
	if cfg.log != nil {
		w = cfg.log
	}
	log := slog.New(app.NewMaskingHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.level})))

	srv := httptest.NewUnstartedServer(nil)
	tb.Cleanup(srv.Close)
	e.baseURL = testBaseURL
	if cfg.localBase {
		e.baseURL = "http://" + srv.Listener.Addr().String()
	}

	storeCfg := store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(tb.TempDir(), "wecampus.db")}
	if cfg.mysql {
		storeCfg = store.Config{Driver: store.DriverMySQL, DSN: freshMySQL(tb)}
	}
	if cfg.fleet != nil {
		e.baseURL, storeCfg = cfg.fleet.baseURL, cfg.fleet.store
	}
	e.dbPath = storeCfg.DSN
	db, err := store.Open(ctx, storeCfg, time.Now, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() }) // a test may have closed it already
	if err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	e.db = db

	e.sim = wecomtest.New(cfg.corpID)
	if cfg.fleet != nil {
		e.sim = cfg.fleet.sim
	}
	tb.Cleanup(e.sim.Close)
	client, err := wecom.New(wecom.Config{
		CorpID: cfg.corpID, AppSecret: e.sim.AppSecret(), ContactsSecret: e.sim.ContactsSecret(),
		AgentID: e.sim.AgentID(), APIBase: e.sim.URL(), Timeout: cfg.wecomTimeout,
	}, log)
	if err != nil {
		tb.Fatal(err)
	}
	e.cas = castest.New()
	if cfg.fleet != nil {
		e.cas = cfg.fleet.cas
	}
	tb.Cleanup(e.cas.Close)
	casClient, err := cas.New(cas.Config{BaseURL: e.cas.URL(), Protocol: 3, PersonAttr: cfg.personAttr}, nil, log)
	if err != nil {
		tb.Fatal(err)
	}
	e.sms = sms.NewLog(log)
	if cfg.fleet != nil {
		e.sms = cfg.fleet.sms
	}
	policy, err := app.NewIdentityPolicy("{{.Number}}", []app.IdentityRuleConfig{
		{Type: "student", Number: "^[0-9]{8,12}$", Department: 2, Label: "学生"},
		{Type: "staff", Department: 3, Label: "教职工"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.svc = &app.Service{Store: db, WeCom: client, CAS: casClient, SMS: e.sms, Identity: policy,
		SMSPolicy: app.SMSPolicy{Secret: []byte("test-sms-secret")}, BaseURL: e.baseURL, HelpContact: testHelpContact, Log: log}
	if cfg.personAttr != "" {
		e.svc.PersonIDKey = []byte("test-person-id-key")
	}

	appCodec := mustCodec(tb, cfg.corpID, cfg.appToken, cfg.appKey, callback.WithMaxAge(5*time.Minute))
	e.wecomApp = mustCodec(tb, cfg.corpID, cfg.appToken, cfg.appKey)
	deps := handlers.Deps{Service: e.svc, AppCodec: appCodec, Ready: db.Ping, Log: log, AuthURL: client.AuthURL, RedisUp: cfg.redisUp,
		WebLoginURL: client.WebLoginURL}
	if !cfg.noContacts {
		deps.ContactsCodec = mustCodec(tb, cfg.corpID, testContactsToken, testContactsKey, callback.WithMaxAge(5*time.Minute))
		e.wecomContacts = mustCodec(tb, cfg.corpID, testContactsToken, testContactsKey)
	}
	e.reg = prometheus.NewRegistry()
	deps.Registry = e.reg
	deps.RateLimiter = cfg.rateLimiter
	e.handler, err = handlers.New(handlers.Config{BaseURL: e.baseURL, SessionSecret: strings.Repeat("s", 32), HelpContact: testHelpContact,
		TrustedProxies: cfg.trustedProxies, RateLimitPerMinute: cfg.rateLimit}, deps)
	if err != nil {
		tb.Fatal(err)
	}
	srv.Config.Handler = e.handler
	srv.Start()
	e.srv = srv
	return e
}

func mustCodec(tb testing.TB, corpID, token, key string, opts ...callback.Option) *callback.Codec {
	tb.Helper()
	c, err := callback.New(corpID, token, key, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
	via    *response // the 303 a member's browser followed to get here
}

// do sends a request over real HTTP; rawQuery is put on the wire exactly as given.
func (e *env) do(method, path, rawQuery string, body []byte) response {
	e.t.Helper()
	u := e.srv.URL + path
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	got := response{status: res.StatusCode, header: res.Header, body: b}
	if strings.HasPrefix(res.Request.URL.String(), e.srv.URL) { // not a page a redirect led to
		e.checkPage(method+" "+path, got)
	}
	return got
}

// delivery is one signed callback POST as WeCom would send it.
type delivery struct {
	path  string
	query string
	body  []byte
}

// sign returns the WeCom signature sha1(sort(token, timestamp, nonce, data)), computed here
// independently of the codec.
func sign(token, timestamp, nonce, data string) string {
	s := []string{token, timestamp, nonce, data}
	sort.Strings(s)
	h := sha1.Sum([]byte(strings.Join(s, "")))
	return hex.EncodeToString(h[:])
}

func (e *env) nextNonce() string { return strconv.FormatInt(1372623149+e.nonce.Add(1), 10) }

// encrypt builds the delivery of plaintext to path, encrypted and signed by sender, with the
// given timestamp.
func (e *env) encrypt(path string, sender *callback.Codec, plaintext []byte, ts int64) delivery {
	e.t.Helper()
	timestamp, nonce := strconv.FormatInt(ts, 10), e.nextNonce()
	body, sig, err := sender.EncryptEvent(plaintext, timestamp, nonce)
	if err != nil {
		e.t.Fatal(err)
	}
	q := url.Values{"msg_signature": {sig}, "timestamp": {timestamp}, "nonce": {nonce}}
	return delivery{path: path, query: q.Encode(), body: body}
}

// event builds the delivery of in to the app callback (or to the contacts one when in.Channel
// is app.ChannelContacts), timestamped now.
func (e *env) event(in *app.Inbound) delivery {
	e.t.Helper()
	if in.ToUser == "" {
		in.ToUser = testCorpID
	}
	if in.CreateTime == 0 {
		in.CreateTime = time.Now().Unix()
	}
	if in.Channel == app.ChannelContacts {
		return e.encrypt("/wecom/contacts", e.wecomContacts, callback.EventXML(in), time.Now().Unix())
	}
	return e.encrypt("/wecom/callback", e.wecomApp, callback.EventXML(in), time.Now().Unix())
}

func (e *env) post(d delivery) response {
	e.t.Helper()
	return e.do(http.MethodPost, d.path, d.query, d.body)
}

// replyXML is the decrypted passive text reply.
type replyXML struct {
	ToUserName   string `xml:"ToUserName"`
	FromUserName string `xml:"FromUserName"`
	CreateTime   int64  `xml:"CreateTime"`
	MsgType      string `xml:"MsgType"`
	Content      string `xml:"Content"`
}

// openReply decrypts a passive reply the way WeCom does and parses it.
func (e *env) openReply(sender *callback.Codec, body []byte) replyXML {
	e.t.Helper()
	plain, err := sender.OpenReply(body)
	if err != nil {
		e.t.Fatalf("open reply %q: %v", body, err)
	}
	var r replyXML
	if err := xml.Unmarshal(plain, &r); err != nil {
		e.t.Fatalf("reply plaintext %q: %v", plain, err)
	}
	return r
}

// createBinding stores a binding with status (created pending, then moved to status).
func (e *env) createBinding(number, userID, mobile string, status app.Status) *app.Binding {
	e.t.Helper()
	ctx := context.Background()
	b := &app.Binding{Number: number, UserID: userID, Mobile: mobile, Name: "测试" + number, Type: "student",
		Department: 2, Status: app.StatusPending}
	if err := e.db.CreateBinding(ctx, b, app.Event{Kind: app.EventBound, Actor: app.ActorSystem}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.sim.AddMember(wecomtest.Member{UserID: userID, Name: b.Name, Mobile: mobile, Department: []int64{2}, Status: 4}); err != nil {
		e.t.Fatal(err)
	}
	if status != app.StatusPending {
		upd := app.BindingUpdate{Status: app.Ptr(status), Reason: app.Ptr("test")}
		var err error
		if b, err = e.db.UpdateBinding(ctx, b.ID, upd, app.Event{Kind: app.EventUnbound, Actor: app.ActorSystem}); err != nil {
			e.t.Fatal(err)
		}
	}
	return b
}

func (e *env) binding(id int64) *app.Binding {
	e.t.Helper()
	b, err := e.db.FindBindingByID(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// deliverOutbox runs the outbox once and returns the messages the simulator has accepted.
func (e *env) deliverOutbox() []wecomtest.Message {
	e.t.Helper()
	if _, err := e.svc.DeliverOutbox(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return e.sim.Messages()
}

// snapshot describes everything stored, to prove that a request changed nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	sqlDB, err := sql.Open("sqlite", e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer sqlDB.Close()
	var b strings.Builder
	for _, q := range []string{
		"SELECT COUNT(*) FROM bindings", "SELECT COUNT(*) FROM binding_events", "SELECT COUNT(*) FROM inbound_seen",
		"SELECT COUNT(*) FROM outbox", "SELECT COUNT(*) FROM intents", "SELECT COUNT(*) FROM sms_codes",
	} {
		var n int
		if err := sqlDB.QueryRow(q).Scan(&n); err != nil {
			e.t.Fatalf("%s: %v", q, err)
		}
		fmt.Fprintf(&b, "%s = %d\n", q, n)
	}
	bs, err := e.db.FindBindings(context.Background(), app.BindingFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, x := range bs {
		fmt.Fprintf(&b, "binding %d %s %s %s %s %q %s\n", x.ID, x.Number, x.UserID, x.Mobile, x.Status, x.Reason, x.UpdatedAt)
	}
	fmt.Fprintf(&b, "messages %d\n", len(e.sim.Messages()))
	return b.String()
}

// metricsText fetches /metrics.
func (e *env) metricsText() string {
	e.t.Helper()
	r := e.do(http.MethodGet, "/metrics", "", nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("/metrics: %d", r.status)
	}
	return string(r.body)
}

// syncBuffer is a goroutine-safe log sink.
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
