package wecom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/silenceper/wechat/v2/cache"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

const apiTestCorp = "wwapitest"

// apiFixture is a Client wired to a fresh simulator.
type apiFixture struct {
	sim *wecomtest.Server
	c   *wecom.Client
	reg *prometheus.Registry
	log *bytes.Buffer
}

// newAPIFixture starts a simulator and a Client for it; mutate adjusts the config.
func newAPIFixture(t *testing.T, mutate func(*wecom.Config), opts ...wecom.Option) *apiFixture {
	t.Helper()
	sim := wecomtest.New(apiTestCorp)
	t.Cleanup(sim.Close)
	f := &apiFixture{sim: sim, reg: prometheus.NewRegistry(), log: &bytes.Buffer{}}
	cfg := apiTestConfig(sim)
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewTextHandler(&apiSyncWriter{w: f.log}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := wecom.New(cfg, log, append([]wecom.Option{wecom.WithRegisterer(f.reg)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	return f
}

func apiTestConfig(sim *wecomtest.Server) wecom.Config {
	return wecom.Config{
		CorpID: sim.CorpID(), AppSecret: sim.AppSecret(), ContactsSecret: sim.ContactsSecret(),
		AgentID: sim.AgentID(), APIBase: sim.URL(), Timeout: 2 * time.Second,
	}
}

type apiSyncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *apiSyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (f *apiFixture) addMember(t *testing.T, m wecomtest.Member) {
	t.Helper()
	if len(m.Department) == 0 {
		m.Department = []int64{1}
	}
	if m.Name == "" {
		m.Name = "测试"
	}
	if err := f.sim.AddMember(m); err != nil {
		t.Fatal(err)
	}
}

// apiWeComError asserts err is an *app.WeComError and returns it.
func apiWeComError(t *testing.T, err error) *app.WeComError {
	t.Helper()
	var we *app.WeComError
	if !errors.As(err, &we) {
		t.Fatalf("error %v (%T) is not a *app.WeComError", err, err)
	}
	return we
}

// apiCounter reads wecampus_wecom_calls_total{endpoint,errcode}.
func apiCounter(t *testing.T, reg *prometheus.Registry, endpoint, errcode string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wecampus_wecom_calls_total" {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && l.GetValue() != endpoint || l.GetName() == "errcode" && l.GetValue() != errcode {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// apiHistogramCount reads the sample count of wecampus_wecom_call_duration_seconds{endpoint}.
func apiHistogramCount(t *testing.T, reg *prometheus.Registry, endpoint string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wecampus_wecom_call_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == endpoint {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func TestClientNewValidates(t *testing.T) {
	_, err := wecom.New(wecom.Config{APIBase: "qyapi.weixin.qq.com"}, nil)
	if err == nil {
		t.Fatal("New accepted an empty config")
	}
	for _, key := range []string{"corp_id", "app_secret", "contacts_secret", "agent_id", "api_base"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
	c, err := wecom.New(wecom.Config{CorpID: "ww1", AppSecret: "a", ContactsSecret: "c", AgentID: 1}, nil)
	if err != nil || c == nil {
		t.Fatalf("New with defaults: %v", err)
	}
}

func TestClientAuthURL(t *testing.T) {
	c, err := wecom.New(wecom.Config{CorpID: "ww5823bf96d3bd56c7", AppSecret: "a", ContactsSecret: "c", AgentID: 1000002}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := c.AuthURL("https://wecampus.example.edu.cn/unbind?x=1&y=2", "Ab12")
	want := "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww5823bf96d3bd56c7" +
		"&redirect_uri=https%3A%2F%2Fwecampus.example.edu.cn%2Funbind%3Fx%3D1%26y%3D2" +
		"&response_type=code&scope=snsapi_base&state=Ab12&agentid=1000002#wechat_redirect"
	if got != want {
		t.Errorf("AuthURL =\n %s\nwant\n %s", got, want)
	}
	c, err = wecom.New(wecom.Config{CorpID: "ww1", AppSecret: "a", ContactsSecret: "c", AgentID: 7, OAuthBase: "http://127.0.0.1:8080/oauth/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.AuthURL("http://x/me", "s"); !strings.HasPrefix(got, "http://127.0.0.1:8080/oauth/connect/oauth2/authorize?appid=ww1&") {
		t.Errorf("AuthURL with oauth_base = %s", got)
	}
}

// Each secret has its own token, cached under its own key, used for the right endpoints.
func TestClientTokensPerSecret(t *testing.T) {
	shared := cache.NewMemory() // one cache for both secrets and both Clients
	f := newAPIFixture(t, nil, wecom.WithCache(shared))
	ctx := context.Background()
	f.addMember(t, wecomtest.Member{UserID: "zs", Mobile: "13800000001"})

	for range 2 {
		if _, err := f.c.GetUser(ctx, "zs"); err != nil {
			t.Fatal(err)
		}
		if err := f.c.SendText(ctx, "zs", "你好", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.UserIDByMobile(ctx, "13800000001"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.JoinQRCode(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		"user/get": wecomtest.SecretApp, "message/send": wecomtest.SecretApp,
		"user/getuserid": wecomtest.SecretContacts, "corp/get_join_qrcode": wecomtest.SecretContacts,
	}
	tokens := map[string]int{}
	for _, call := range f.sim.Calls() {
		if call.Endpoint == "gettoken" {
			tokens[call.Secret]++
			continue
		}
		if call.Secret != want[call.Endpoint] || call.ErrCode != 0 {
			t.Errorf("%s used the %q token (errcode %d), want %q", call.Endpoint, call.Secret, call.ErrCode, want[call.Endpoint])
		}
	}
	if tokens[wecomtest.SecretApp] != 1 || tokens[wecomtest.SecretContacts] != 1 {
		t.Errorf("gettoken calls per secret = %v, want one each (cached afterwards)", tokens)
	}

	// A second Client on another simulator (another api_base) shares the cache and the process
	// without disturbing the first.
	sim2 := wecomtest.New(apiTestCorp)
	defer sim2.Close()
	c2, err := wecom.New(apiTestConfig(sim2), nil, wecom.WithCache(shared))
	if err != nil {
		t.Fatal(err)
	}
	if err := sim2.AddMember(wecomtest.Member{UserID: "ls", Name: "李四", Department: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.GetUser(ctx, "ls"); err != nil {
		t.Fatalf("second client: %v", err)
	}
	if _, err := f.c.GetUser(ctx, "zs"); err != nil {
		t.Fatalf("first client after the second: %v", err)
	}
	if n := f.sim.CallCount("gettoken"); n != 2 {
		t.Errorf("first simulator saw %d gettoken calls, want 2", n)
	}
	if n := sim2.CallCount("gettoken"); n != 1 {
		t.Errorf("second simulator saw %d gettoken calls, want 1", n)
	}
	if n1, n2 := len(f.sim.Calls()), len(sim2.Calls()); n1 != 11 || n2 != 2 {
		t.Errorf("calls: %d and %d, want 11 and 2 (each Client talks to its own api_base)", n1, n2)
	}
}

func TestClientRefreshesRejectedToken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reject func(*wecomtest.Server)
		code   int
	}{
		{"42001 expired", (*wecomtest.Server).ExpireTokens, 42001},
		{"40014 invalid", (*wecomtest.Server).InvalidateTokens, 40014},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAPIFixture(t, nil)
			ctx := context.Background()
			f.addMember(t, wecomtest.Member{UserID: "zs"})
			if err := f.c.SendText(ctx, "zs", "1", 0); err != nil {
				t.Fatal(err)
			}
			tc.reject(f.sim)
			if err := f.c.SendText(ctx, "zs", "2", 0); err != nil {
				t.Fatalf("after %s: %v", tc.name, err)
			}
			if n := f.sim.CallCount("gettoken"); n != 2 {
				t.Errorf("gettoken calls = %d, want 2 (exactly one refresh)", n)
			}
			if n := f.sim.CallCount("message/send"); n != 3 {
				t.Errorf("message/send calls = %d, want 3 (one retried)", n)
			}
			if n := len(f.sim.Messages()); n != 2 {
				t.Errorf("%d messages delivered, want 2", n)
			}
			if v := apiCounter(t, f.reg, "message/send", itoa(tc.code)); v != 1 {
				t.Errorf("calls_total{message/send,%d} = %v, want 1", tc.code, v)
			}

			// Many concurrent callers with a rejected token cause a single refresh.
			tc.reject(f.sim)
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for range 20 {
				wg.Go(func() { errs <- f.c.SendText(ctx, "zs", "burst", 0) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			if n := f.sim.CallCount("gettoken"); n != 3 {
				t.Errorf("gettoken calls after a burst = %d, want 3", n)
			}
		})
	}
}

// A token rejected again after the refresh is an error, not a loop.
func TestClientRetriesRejectedTokenOnce(t *testing.T) {
	f := newAPIFixture(t, nil)
	f.addMember(t, wecomtest.Member{UserID: "zs"})
	f.sim.Inject("user/get", 10, wecomtest.Fault{ErrCode: 42001})
	_, err := f.c.GetUser(context.Background(), "zs")
	if we := apiWeComError(t, err); we.Code != 42001 || we.Op != "user/get" || we.Unknown {
		t.Errorf("error = %+v, want user/get 42001", we)
	}
	if n := f.sim.CallCount("user/get"); n != 2 {
		t.Errorf("user/get calls = %d, want 2", n)
	}
	if n := f.sim.CallCount("gettoken"); n != 2 {
		t.Errorf("gettoken calls = %d, want 2", n)
	}
}

func TestClientWrongSecretNoLoop(t *testing.T) {
	f := newAPIFixture(t, func(c *wecom.Config) { c.AppSecret = "wrong-secret" })
	ctx := context.Background()
	for range 3 {
		err := f.c.SendText(ctx, "zs", "x", 0)
		if we := apiWeComError(t, err); we.Code != 40001 || we.Op != "gettoken" {
			t.Fatalf("error = %+v, want gettoken 40001", we)
		}
		if strings.Contains(err.Error(), "wrong-secret") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	if n := f.sim.CallCount("gettoken"); n != 1 {
		t.Errorf("gettoken calls = %d, want 1 (a wrong secret is not retried)", n)
	}
	if n := f.sim.CallCount("message/send"); n != 0 {
		t.Errorf("message/send calls = %d without a token", n)
	}
	// config check probes anyway, and the contacts secret is unaffected.
	if err := f.c.ProbeToken(ctx, "app"); wecomCode(err) != 40001 {
		t.Errorf("ProbeToken(app) = %v, want 40001", err)
	}
	if n := f.sim.CallCount("gettoken"); n != 2 {
		t.Errorf("gettoken calls after probe = %d, want 2", n)
	}
	if err := f.c.ProbeToken(ctx, "contacts"); err != nil {
		t.Errorf("ProbeToken(contacts) = %v", err)
	}
	if err := f.c.ProbeToken(ctx, "other"); err == nil {
		t.Error("ProbeToken(other) succeeded")
	}
}

func wecomCode(err error) int { return app.WeComCode(err) }

// A create that times out is Unknown, is not sent again, and is resolved by reading.
func TestClientCreateTimeoutIsUnknown(t *testing.T) {
	const timeout = 300 * time.Millisecond
	f := newAPIFixture(t, func(c *wecom.Config) { c.Timeout = timeout })
	ctx := context.Background()
	if err := f.c.ProbeToken(ctx, "contacts"); err != nil { // token fetched before the clock starts
		t.Fatal(err)
	}
	f.sim.Inject("user/create", 1, wecomtest.Fault{Drop: true}) // applied, never answered

	start := time.Now()
	err := f.c.CreateUser(ctx, app.Member{UserID: "2021001", Name: "张三", Mobile: "13800000001", Department: []int64{2}})
	elapsed := time.Since(start)
	we := apiWeComError(t, err)
	if !we.Unknown || we.Op != "user/create" {
		t.Errorf("error = %+v, want user/create Unknown", we)
	}
	if !app.WeComTemporary(err) {
		t.Error("an unknown outcome is not temporary")
	}
	if elapsed < timeout || elapsed > timeout+700*time.Millisecond {
		t.Errorf("gave up after %v, want about %v", elapsed, timeout)
	}
	if n := f.sim.CallCount("user/create"); n != 1 {
		t.Errorf("user/create sent %d times, want once", n)
	}
	if v := apiCounter(t, f.reg, "user/create", "timeout"); v != 1 {
		t.Errorf(`calls_total{user/create,timeout} = %v, want 1`, v)
	}
	m, err := f.c.GetUser(ctx, "2021001")
	if err != nil || m.Status != 4 || m.Mobile != "13800000001" {
		t.Errorf("read after the timeout: %+v, %v; want the created member", m, err)
	}

	// Lost before WeCom applied it: the read says 60111.
	f.sim.Inject("user/create", 1, wecomtest.Fault{Drop: true, NotApplied: true})
	err = f.c.CreateUser(ctx, app.Member{UserID: "2021002", Name: "李四", Mobile: "13800000002", Department: []int64{2}})
	if we := apiWeComError(t, err); !we.Unknown {
		t.Errorf("error = %+v, want Unknown", we)
	}
	if _, err := f.c.GetUser(ctx, "2021002"); wecomCode(err) != app.WeComUserNotFound {
		t.Errorf("read after a lost create = %v, want 60111", err)
	}

	// A hanging gettoken is bounded by the same deadline.
	f.sim.ExpireTokens()
	f.sim.Inject("gettoken", 1, wecomtest.Fault{Drop: true})
	start = time.Now()
	_, err = f.c.GetUser(ctx, "2021001")
	if we := apiWeComError(t, err); !we.Unknown || time.Since(start) > timeout+700*time.Millisecond {
		t.Errorf("hanging gettoken: %+v after %v", we, time.Since(start))
	}
}

// Reads are sent once more after a transport failure; writes never are.
func TestClientTransportRetry(t *testing.T) {
	f := newAPIFixture(t, nil)
	ctx := context.Background()
	f.addMember(t, wecomtest.Member{UserID: "a", Department: []int64{1, 2}})
	f.addMember(t, wecomtest.Member{UserID: "b"})

	f.sim.Inject("user/list_id", 1, wecomtest.Fault{Reset: true})
	ids, err := f.c.ListUserIDs(ctx)
	if err != nil || strings.Join(ids, ",") != "a,b" {
		t.Fatalf("ListUserIDs after one reset = %v, %v", ids, err)
	}
	if n := f.sim.CallCount("user/list_id"); n != 2 {
		t.Errorf("user/list_id calls = %d, want 2", n)
	}

	f.sim.Inject("user/list_id", 2, wecomtest.Fault{Reset: true})
	_, err = f.c.ListUserIDs(ctx)
	if we := apiWeComError(t, err); !we.Unknown {
		t.Errorf("two resets: %+v, want Unknown", we)
	}
	if v := apiCounter(t, f.reg, "user/list_id", "transport"); v != 3 {
		t.Errorf(`calls_total{user/list_id,transport} = %v, want 3`, v)
	}

	f.sim.Inject("user/create", 1, wecomtest.Fault{Reset: true})
	err = f.c.CreateUser(ctx, app.Member{UserID: "c", Name: "丙", Mobile: "13800000003", Department: []int64{1}})
	if we := apiWeComError(t, err); !we.Unknown {
		t.Errorf("reset create: %+v, want Unknown", we)
	}
	if n := f.sim.CallCount("user/create"); n != 1 {
		t.Errorf("user/create sent %d times, want once", n)
	}

	f.sim.Inject("message/send", 1, wecomtest.Fault{HTTPStatus: http.StatusBadGateway})
	if we := apiWeComError(t, f.c.SendText(ctx, "a", "x", 0)); !we.Unknown {
		t.Errorf("502: %+v, want Unknown", we)
	}
	if n := len(f.sim.Messages()); n != 0 {
		t.Errorf("%d messages after a 502", n)
	}
}

// The access token and the secrets never appear in an error text or the log.
func TestClientRedactsCredentials(t *testing.T) {
	f := newAPIFixture(t, func(c *wecom.Config) { c.Timeout = 300 * time.Millisecond })
	ctx := context.Background()
	f.addMember(t, wecomtest.Member{UserID: "zs", Mobile: "13812345678"})
	var errs []error
	collect := func(err error) {
		if err == nil {
			t.Error("expected an error")
			return
		}
		errs = append(errs, err)
	}

	f.sim.Inject("user/get", 2, wecomtest.Fault{ErrCode: 40014})
	_, err := f.c.GetUser(ctx, "zs")
	collect(err)
	f.sim.Inject("user/update", 1, wecomtest.Fault{Drop: true})
	collect(f.c.UpdateUser(ctx, app.MemberUpdate{UserID: "zs", Name: "张三"}))
	f.sim.Inject("batch/invite", 1, wecomtest.Fault{Reset: true})
	collect(f.c.Invite(ctx, "zs"))
	f.sim.Inject("message/send", 1, wecomtest.Fault{HTTPStatus: 502})
	collect(f.c.SendText(ctx, "zs", "x", 0))
	_, _, err = f.c.UserFromCode(ctx, "bogus")
	collect(err)
	_, err = f.c.UserIDByMobile(ctx, "13900000000")
	collect(err)
	collect(f.c.CreateUser(ctx, app.Member{UserID: "zs", Name: "张三", Mobile: "13800000009", Department: []int64{1}}))

	secrets := append(f.sim.Tokens(), f.sim.AppSecret(), f.sim.ContactsSecret())
	for _, call := range f.sim.Calls() {
		if tok := call.Query.Get("access_token"); tok != "" {
			secrets = append(secrets, tok)
		}
	}
	logged := f.log.String()
	for _, s := range secrets {
		for _, err := range errs {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q contains a credential", err)
			}
		}
		if strings.Contains(logged, s) {
			t.Errorf("log contains a credential %q", s[:4])
		}
	}
	if strings.Contains(logged, "13812345678") || strings.Contains(logged, "13900000000") {
		t.Error("log contains a full mobile")
	}
	if !strings.Contains(logged, "139****0000") {
		t.Errorf("log lacks the masked mobile:\n%s", logged)
	}
	if wecomCode(errs[0]) != 40014 || wecomCode(errs[4]) != app.WeComInvalidCode ||
		wecomCode(errs[5]) != app.WeComMobileNotFound || wecomCode(errs[6]) != app.WeComUserIDExists {
		t.Errorf("errcodes: %v", errs)
	}
}

// Even a server that echoes the request URL into its answer cannot leak the token.
func TestClientRedactsEchoedToken(t *testing.T) {
	const tok = "SECRETTOKEN0123456789"
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/gettoken") {
			_, _ = w.Write([]byte(`{"errcode":0,"access_token":"` + tok + `","expires_in":7200}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"errcode": 60011, "errmsg": "no privilege: " + r.URL.String() + " token " + tok})
	}))
	defer ts.Close()
	c, err := wecom.New(wecom.Config{CorpID: "ww1", AppSecret: "appsecret1", ContactsSecret: "consecret1", AgentID: 1, APIBase: ts.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.DeleteUser(context.Background(), "zs")
	if we := apiWeComError(t, err); we.Code != 60011 {
		t.Fatalf("error = %v", err)
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "consecret1") {
		t.Errorf("error leaks the token: %v", err)
	}
	if !strings.Contains(err.Error(), "access_token=REDACTED") {
		t.Errorf("error = %v, want the redacted URL", err)
	}
}

func TestClientRequestBodies(t *testing.T) {
	f := newAPIFixture(t, nil)
	ctx := context.Background()
	err := f.c.CreateUser(ctx, app.Member{UserID: "2021001", Name: "张三", Mobile: "13800000001", Department: []int64{2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.c.UpdateUser(ctx, app.MemberUpdate{UserID: "2021001", Name: "张三丰"}); err != nil {
		t.Fatal(err)
	}
	if err := f.c.UpdateUser(ctx, app.MemberUpdate{UserID: "2021001", Department: []int64{3}}); err != nil {
		t.Fatal(err)
	}
	var bodies []map[string]any
	for _, call := range f.sim.Calls() {
		if call.Endpoint != "user/create" && call.Endpoint != "user/update" {
			continue
		}
		var b map[string]any
		if err := json.Unmarshal(call.Body, &b); err != nil {
			t.Fatal(err)
		}
		if _, ok := b["enable"]; ok {
			t.Errorf("%s body sends enable: %s", call.Endpoint, call.Body)
		}
		bodies = append(bodies, b)
	}
	if len(bodies) != 3 {
		t.Fatalf("%d bodies", len(bodies))
	}
	if bodies[0]["to_invite"] != true || bodies[0]["mobile"] != "13800000001" {
		t.Errorf("create body = %v, want to_invite true", bodies[0])
	}
	if len(bodies[1]) != 2 || bodies[1]["name"] != "张三丰" {
		t.Errorf("update body = %v, want only userid and name", bodies[1])
	}
	if len(bodies[2]) != 2 || bodies[2]["department"] == nil {
		t.Errorf("update body = %v, want only userid and department", bodies[2])
	}
	m, ok := f.sim.Member("2021001")
	if !ok || m.Status != 4 || !m.ToInvite || m.Name != "张三丰" || len(m.Department) != 1 || m.Department[0] != 3 || m.Mobile != "13800000001" {
		t.Errorf("member = %+v, want enabled, invited, renamed, moved, mobile kept", m)
	}
}

// TestClientSendTextDuplicateCheck: a send with a window asks WeCom's duplicate check (capped at
// its 4 h maximum); without one the body has neither field.
func TestClientSendTextDuplicateCheck(t *testing.T) {
	f := newAPIFixture(t, nil)
	ctx := context.Background()
	f.addMember(t, wecomtest.Member{UserID: "zs", Mobile: "13800000001"})
	for _, d := range []time.Duration{0, time.Hour, 24 * time.Hour} {
		if err := f.c.SendText(ctx, "zs", "欢迎", d); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, call := range f.sim.Calls() {
		if call.Endpoint != "message/send" {
			continue
		}
		var b map[string]any
		if err := json.Unmarshal(call.Body, &b); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(b["enable_duplicate_check"], "/", b["duplicate_check_interval"]))
	}
	if want := []string{"<nil>/<nil>", "1/3600", "1/14400"}; !slices.Equal(got, want) {
		t.Errorf("duplicate check fields %q, want %q", got, want)
	}
	if n, d := len(f.sim.Messages()), f.sim.Duplicates(); n != 2 || d != 1 {
		t.Errorf("delivered %d, dropped %d", n, d)
	}
}

func TestClientMembers(t *testing.T) {
	f := newAPIFixture(t, nil)
	ctx := context.Background()
	f.addMember(t, wecomtest.Member{UserID: "a.b@c", Name: "甲", Mobile: "13800000001", Department: []int64{1, 2}, Status: 4})

	m, err := f.c.GetUser(ctx, "A.B@C")
	if err != nil {
		t.Fatal(err)
	}
	if m.UserID != "a.b@c" || m.Name != "甲" || m.Mobile != "13800000001" || m.Status != 4 || len(m.Department) != 2 {
		t.Errorf("GetUser = %+v", m)
	}
	// Query values are escaped: this is one odd userid, not a second access_token.
	if _, err := f.c.GetUser(ctx, "x&access_token=evil"); wecomCode(err) != app.WeComUserNotFound {
		t.Errorf("GetUser(odd id) = %v, want 60111", err)
	}
	if id, err := f.c.UserIDByMobile(ctx, "13800000001"); err != nil || id != "a.b@c" {
		t.Errorf("UserIDByMobile = %q, %v", id, err)
	}
	if _, err := f.c.UserIDByMobile(ctx, "13800000002"); wecomCode(err) != app.WeComMobileNotFound {
		t.Errorf("UserIDByMobile(miss) = %v, want 46004", err)
	}
	err = f.c.CreateUser(ctx, app.Member{UserID: "other", Name: "乙", Mobile: "13800000001", Department: []int64{1}})
	if wecomCode(err) != app.WeComMobileExists {
		t.Errorf("CreateUser(taken mobile) = %v, want 60104", err)
	}
	if err := f.c.Invite(ctx, "a.b@c"); err != nil {
		t.Errorf("Invite = %v", err)
	}
	if err := f.c.Invite(ctx, "a.b@c", "ghost"); wecomCode(err) != app.WeComUserNotFound || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("Invite(ghost) = %v, want 60111 naming ghost", err)
	}
	if n := len(f.sim.Invites()); n != 2 {
		t.Errorf("%d invites recorded, want 2", n)
	}
	qr, err := f.c.JoinQRCode(ctx)
	if err != nil || !strings.HasPrefix(qr, "http") {
		t.Errorf("JoinQRCode = %q, %v", qr, err)
	}
	if err := f.c.DeleteUser(ctx, "a.b@c"); err != nil {
		t.Fatal(err)
	}
	if err := f.c.DeleteUser(ctx, "a.b@c"); wecomCode(err) != app.WeComUserNotFound {
		t.Errorf("second DeleteUser = %v, want 60111", err)
	}
}

// ListUserIDs follows the cursor over pages of 10 000 rows and lists each userid once.
func TestClientListUserIDsPages(t *testing.T) {
	f := newAPIFixture(t, nil)
	const n = 5003 // two departments each: 10 006 rows, two pages
	for i := range n {
		f.addMember(t, wecomtest.Member{UserID: "u" + itoa(100000+i), Department: []int64{1, 2}})
	}
	ids, err := f.c.ListUserIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != n {
		t.Errorf("%d ids, want %d", len(ids), n)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("%s listed twice", id)
		}
		seen[id] = true
	}
	if c := f.sim.CallCount("user/list_id"); c != 2 {
		t.Errorf("user/list_id calls = %d, want 2 pages", c)
	}
}

func TestClientOAuthAndVerification(t *testing.T) {
	f := newAPIFixture(t, nil)
	ctx := context.Background()
	f.addMember(t, wecomtest.Member{UserID: "zs", Status: 4})
	f.addMember(t, wecomtest.Member{UserID: "ls", Status: 4})

	code := f.sim.IssueOAuthCode("zs")
	if uid, oid, err := f.c.UserFromCode(ctx, code); err != nil || uid != "zs" || oid != "" {
		t.Errorf("UserFromCode = %q, %q, %v", uid, oid, err)
	}
	if _, _, err := f.c.UserFromCode(ctx, code); wecomCode(err) != app.WeComInvalidCode {
		t.Errorf("reused code = %v, want 40029", err)
	}
	if uid, oid, err := f.c.UserFromCode(ctx, f.sim.IssueOAuthCodeForOpenID("oX")); err != nil || uid != "" || oid != "oX" {
		t.Errorf("visitor = %q, %q, %v", uid, oid, err)
	}

	uid, tfa, err := f.c.TfaInfo(ctx, f.sim.IssueTfaCode("zs"))
	if err != nil || uid != "zs" || tfa == "" {
		t.Fatalf("TfaInfo = %q, %q, %v", uid, tfa, err)
	}
	if err := f.c.TfaSucc(ctx, "zs", "wrong"); wecomCode(err) != app.WeComInvalidCode {
		t.Errorf("TfaSucc(wrong) = %v", err)
	}
	if err := f.c.TfaSucc(ctx, "zs", tfa); err != nil {
		t.Fatal(err)
	}
	if m, _ := f.sim.Member("zs"); m.Status != 1 {
		t.Errorf("status after TfaSucc = %d", m.Status)
	}
	if err := f.c.AuthSucc(ctx, "ls"); err != nil {
		t.Fatal(err)
	}
	if m, _ := f.sim.Member("ls"); m.Status != 1 {
		t.Errorf("status after AuthSucc = %d", m.Status)
	}
	for _, call := range f.sim.Calls() {
		if call.Endpoint == "auth/getuserinfo" && call.Secret != wecomtest.SecretApp ||
			strings.Contains(call.Endpoint, "tfa") && call.Secret != wecomtest.SecretContacts {
			t.Errorf("%s used the %s token", call.Endpoint, call.Secret)
		}
	}
}

func TestClientMenu(t *testing.T) {
	f := newAPIFixture(t, nil)
	ctx := context.Background()
	if m, err := f.c.GetMenu(ctx); err != nil || m != nil {
		t.Fatalf("GetMenu without a menu = %v, %v; want nil, nil", m, err)
	}
	menu := []app.MenuButton{
		{Type: "click", Name: "绑定状态", Key: "HELP"},
		{Name: "绑定", SubButton: []app.MenuButton{
			{Type: "view", Name: "绑定/解绑", URL: "https://wecampus.example.edu.cn/bind?a=1&b=2"},
			{Type: "view", Name: "我的绑定", URL: "https://wecampus.example.edu.cn/me"},
		}},
	}
	if err := f.c.CreateMenu(ctx, menu); err != nil {
		t.Fatal(err)
	}
	got, err := f.c.GetMenu(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(menu)
	if !bytes.Equal(gb, wb) {
		t.Errorf("GetMenu = %s\nwant %s", gb, wb)
	}
	for _, call := range f.sim.Calls() {
		if call.Endpoint == "menu/create" && bytes.Contains(call.Body, []byte(`\u0026`)) {
			t.Errorf("menu URL HTML-escaped: %s", call.Body)
		}
	}
	if err := f.c.DeleteMenu(ctx); err != nil {
		t.Fatal(err)
	}
	if m, err := f.c.GetMenu(ctx); err != nil || m != nil {
		t.Errorf("GetMenu after delete = %v, %v", m, err)
	}
	err = f.c.CreateMenu(ctx, append(menu, menu...))
	if we := apiWeComError(t, err); we.Code != 40016 || we.Op != "menu/create" {
		t.Errorf("four buttons: %+v, want menu/create 40016", we)
	}
}

func TestClientMetrics(t *testing.T) {
	f := newAPIFixture(t, nil)
	ctx := context.Background()
	f.addMember(t, wecomtest.Member{UserID: "zs"})
	for range 3 {
		if _, err := f.c.GetUser(ctx, "zs"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.c.GetUser(ctx, "nobody"); err == nil {
		t.Fatal("GetUser(nobody) succeeded")
	}
	if v := apiCounter(t, f.reg, "user/get", "0"); v != 3 {
		t.Errorf(`calls_total{user/get,0} = %v, want 3`, v)
	}
	if v := apiCounter(t, f.reg, "user/get", "60111"); v != 1 {
		t.Errorf(`calls_total{user/get,60111} = %v, want 1`, v)
	}
	if v := apiCounter(t, f.reg, "gettoken", "0"); v != 1 {
		t.Errorf(`calls_total{gettoken,0} = %v, want 1`, v)
	}
	if n := apiHistogramCount(t, f.reg, "user/get"); n != 4 {
		t.Errorf("duration samples for user/get = %d, want 4", n)
	}
	// A second Client on the same registry shares the collectors instead of failing.
	if _, err := wecom.New(apiTestConfig(f.sim), nil, wecom.WithRegisterer(f.reg)); err != nil {
		t.Errorf("second Client on one registry: %v", err)
	}
}

// Calls whose ctx is done are not sent.
func TestClientCanceledContext(t *testing.T) {
	f := newAPIFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.c.CreateUser(ctx, app.Member{UserID: "x", Name: "x", Mobile: "13800000001", Department: []int64{1}}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateUser with a canceled ctx = %v", err)
	}
	if n := len(f.sim.Calls()); n != 0 {
		t.Errorf("%d calls sent with a canceled ctx", n)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// BenchmarkClientGetUser measures one user/get round trip through the Client and the simulator
// (loopback HTTP, cached token).
func BenchmarkClientGetUser(b *testing.B) {
	sim := wecomtest.New(apiTestCorp)
	defer sim.Close()
	if err := sim.AddMember(wecomtest.Member{UserID: "zs", Name: "张三", Department: []int64{1}}); err != nil {
		b.Fatal(err)
	}
	c, err := wecom.New(apiTestConfig(sim), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetUser(ctx, "zs"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
