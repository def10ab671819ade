package demo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/cas/castest"
	"github.com/wecampus/wecampus/wecom/callback"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

const (
	testCorp        = "wwtestcorp0000001"
	testAppToken    = "apptoken"
	testAppKey      = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	testContToken   = "contactstoken"
	testContKey     = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
	testAgentID     = 1000002
	testPendingUser = "2021000101"
)

// fakeService stands in for the wecampus service: it opens the callbacks it gets with the
// service's codecs and answers clicks with a passive reply.
type fakeService struct {
	appCodec, contactsCodec *callback.Codec

	mu       sync.Mutex
	received []*app.Inbound
}

func (f *fakeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	codec, channel := f.appCodec, app.ChannelApp
	if r.URL.Path == "/wecom/contacts" {
		codec, channel = f.contactsCodec, app.ChannelContacts
	}
	body, _ := io.ReadAll(r.Body)
	q := r.URL.Query()
	in, err := codec.Open(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body, channel)
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	f.mu.Lock()
	f.received = append(f.received, in)
	f.mu.Unlock()
	if in.Event == "click" {
		out, err := codec.Seal(in, app.Reply{Text: "帮助:" + in.EventKey}, q.Get("timestamp"), q.Get("nonce"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(out)
	}
}

func (f *fakeService) inbound() []*app.Inbound {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*app.Inbound(nil), f.received...)
}

type fixture struct {
	console *Console
	sim     *wecomtest.Server
	svc     *fakeService
	base    string
}

func mustCodec(t *testing.T, token, key string) *callback.Codec {
	t.Helper()
	c, err := callback.New(testCorp, token, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fs := &fakeService{appCodec: mustCodec(t, testAppToken, testAppKey), contactsCodec: mustCodec(t, testContToken, testContKey)}
	ts := httptest.NewServer(fs)
	t.Cleanup(ts.Close)
	sim := wecomtest.New(testCorp)
	t.Cleanup(sim.Close)
	cas := castest.New()
	t.Cleanup(cas.Close)
	policy, err := app.NewIdentityPolicy("{{.Number}}", []app.IdentityRuleConfig{{Type: "student", Number: "^[0-9]{8,12}$", Department: 2, Label: "学生"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.AddMember(wecomtest.Member{UserID: testPendingUser, Name: "张三", Mobile: "13800000101", Department: []int64{2}, Status: 4}); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{
		BaseURL:       ts.URL,
		Service:       &app.Service{Identity: policy},
		WeCom:         sim,
		CAS:           cas,
		SMS:           NewSMSRecorder(&memorySMS{}),
		Identities:    []Identity{{Number: testPendingUser, Password: "pw", Name: "张三", Type: "student"}, {Number: "2010000001", Password: "pw", Name: "赵毅", Type: "alumni"}},
		AppCodec:      mustCodec(t, testAppToken, testAppKey),
		ContactsCodec: mustCodec(t, testContToken, testContKey),
		AgentID:       testAgentID,
		CorpID:        testCorp,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &fixture{console: c, sim: sim, svc: fs, base: ts.URL}
}

// memorySMS is a CodeLog that can be told to fail.
type memorySMS struct {
	fail bool
	last map[string]string
}

func (m *memorySMS) Send(_ context.Context, mobile, code string, _ app.Purpose, _ string) error {
	if m.fail {
		return errors.New("gateway down")
	}
	if m.last == nil {
		m.last = map[string]string{}
	}
	m.last[mobile] = code
	return nil
}

func (m *memorySMS) Last(mobile string) (string, bool) { c, ok := m.last[mobile]; return c, ok }

func serve(h http.Handler, method, target string, body url.Values, header http.Header) *httptest.ResponseRecorder {
	var r *http.Request
	if body != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(body.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestNewNeedsItsDependencies(t *testing.T) {
	_, err := New(Config{BaseURL: "http://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "Config.Service") || !strings.Contains(err.Error(), "Config.ContactsCodec") {
		t.Fatalf("err = %v", err)
	}
}

// Joining in the simulator sends an encrypted change_contact update_user (Status 1) to
// /wecom/contacts, signed with the contacts token, as WeCom does.
func TestJoinDeliversEncryptedChangeContact(t *testing.T) {
	f := newFixture(t)
	if err := f.sim.Join(testPendingUser); err != nil {
		t.Fatal(err)
	}
	if !f.console.WaitDelivered(testPendingUser, 5*time.Second) {
		t.Fatal("the change event was not delivered")
	}
	got := f.svc.inbound()
	if len(got) != 1 {
		t.Fatalf("received %d callbacks, want 1", len(got))
	}
	in := got[0]
	if in.Channel != app.ChannelContacts || in.Event != "change_contact" || in.ChangeType != "update_user" ||
		in.UserID != testPendingUser || in.Status != 1 || in.ToUser != testCorp || in.FromUser != "sys" {
		t.Errorf("callback = %+v", in)
	}
	cbs := f.console.Callbacks()
	if len(cbs) != 1 || cbs[0].Path != "/wecom/contacts" || cbs[0].Status != http.StatusOK || cbs[0].Kind != "change_contact.update_user" {
		t.Errorf("callback records = %+v", cbs)
	}
}

// A refused callback (here: the service has other keys) is not retried and not reported as
// delivered with 200.
func TestRefusedCallbackIsRecorded(t *testing.T) {
	f := newFixture(t)
	f.svc.contactsCodec = mustCodec(t, "othertoken", testContKey)
	if err := f.sim.Join(testPendingUser); err != nil {
		t.Fatal(err)
	}
	f.console.WaitDelivered(testPendingUser, 5*time.Second)
	cbs := f.console.Callbacks()
	if len(cbs) != 1 || cbs[0].Status != http.StatusForbidden {
		t.Errorf("callback records = %+v (a 4xx must not be retried)", cbs)
	}
}

func TestClickReturnsDecryptedReply(t *testing.T) {
	f := newFixture(t)
	rep, err := f.console.Click(context.Background(), testPendingUser, "HELP")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Content != "帮助:HELP" || !strings.Contains(rep.Encrypted, "<Encrypt>") || strings.Contains(rep.Encrypted, "帮助") {
		t.Errorf("reply = %+v", rep)
	}
	in := f.svc.inbound()[0]
	if in.Channel != app.ChannelApp || in.Event != "click" || in.EventKey != "HELP" || in.FromUser != testPendingUser || in.AgentID != "1000002" {
		t.Errorf("click = %+v", in)
	}
	// A text without reply gives an empty reply, not an error.
	rep, err = f.console.Text(context.Background(), testPendingUser, "你好")
	if err != nil || rep.Content != "" {
		t.Errorf("text: %+v, %v", rep, err)
	}
}

func TestAuthorizeChecksLikeWeCom(t *testing.T) {
	f := newFixture(t)
	h := f.console.Handler()
	q := func(appid, redirect string) string {
		return authorizePath + "?" + url.Values{"appid": {appid}, "redirect_uri": {redirect}, "response_type": {"code"},
			"scope": {"snsapi_base"}, "state": {"abc123"}, "agentid": {"1000002"}}.Encode()
	}
	for name, tc := range map[string]struct {
		target string
		want   string
	}{
		"foreign redirect": {q(testCorp, "https://evil.example/unbind"), "redirect_uri参数错误"},
		"prefix trick":     {q(testCorp, f.base+".evil.example/unbind"), "redirect_uri参数错误"},
		"wrong appid":      {q("wwother", f.base+"/unbind"), "appid"},
	} {
		w := serve(h, "GET", tc.target, nil, nil)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s: %d %s", name, w.Code, w.Body.String())
		}
	}

	// No identity selected: the picker lists the members.
	w := serve(h, "GET", q(testCorp, f.base+"/unbind"), nil, nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `value="`+testPendingUser+`"`) {
		t.Fatalf("picker: %d %s", w.Code, w.Body.String())
	}

	// The selected identity is a member: a silent redirect with a code for it and the state.
	w = serve(h, "GET", q(testCorp, f.base+"/unbind?x=1"), nil, http.Header{"Cookie": {selectedCookie + "=" + testPendingUser}})
	if w.Code != http.StatusFound {
		t.Fatalf("selected member: %d %s", w.Code, w.Body.String())
	}
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil || loc.Path != "/unbind" || loc.Query().Get("state") != "abc123" || loc.Query().Get("code") == "" || loc.Query().Get("x") != "1" {
		t.Fatalf("redirect = %s", w.Header().Get("Location"))
	}

	// Picking "not a member" on the page redirects with a visitor's code.
	w = serve(h, "POST", OAuthBasePath+"/pick", url.Values{"redirect_uri": {f.base + "/me"}, "state": {"s1"}}, nil)
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), f.base+"/me?code=") {
		t.Errorf("pick visitor: %d %s", w.Code, w.Header().Get("Location"))
	}
	w = serve(h, "POST", OAuthBasePath+"/pick", url.Values{"redirect_uri": {"https://evil.example/"}, "state": {"s1"}}, nil)
	if w.Code != http.StatusBadRequest {
		t.Errorf("pick with a foreign redirect: %d", w.Code)
	}
}

func TestCrossSitePostRefused(t *testing.T) {
	f := newFixture(t)
	w := serve(f.console.Handler(), "POST", ConsolePath+"/join", url.Values{"userid": {testPendingUser}}, http.Header{"Origin": {"https://evil.example"}})
	if w.Code != http.StatusForbidden {
		t.Fatalf("cross-site join: %d", w.Code)
	}
	if m, _ := f.sim.Member(testPendingUser); m.Status != 4 {
		t.Error("a cross-site POST changed the simulator")
	}
}

func TestSelectAndVerifyRedirect(t *testing.T) {
	f := newFixture(t)
	h := f.console.Handler()
	w := serve(h, "POST", ConsolePath+"/select", url.Values{"number": {testPendingUser}}, http.Header{"Origin": {f.base}})
	if w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Set-Cookie"), selectedCookie+"="+testPendingUser) {
		t.Fatalf("select: %d %v", w.Code, w.Header())
	}
	w = serve(h, "GET", ConsolePath+"/verify?userid="+testPendingUser, nil, nil)
	if w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), f.base+"/verify?code=") {
		t.Fatalf("verify: %d %s", w.Code, w.Header().Get("Location"))
	}
	w = serve(h, "GET", ConsolePath+"/nope", nil, nil)
	if w.Code != http.StatusNotFound {
		t.Errorf("unknown console page: %d", w.Code)
	}
}

func TestSMSRecorder(t *testing.T) {
	mem := &memorySMS{}
	r := NewSMSRecorder(mem)
	ctx := context.Background()
	for _, s := range []struct {
		mobile, code string
		purpose      app.Purpose
	}{
		{"13800000001", "111111", app.PurposeVerify},
		{"13800000002", "222222", app.PurposeUnbind},
		{"13800000001", "333333", app.PurposeRebind},
	} {
		if err := r.Send(ctx, s.mobile, s.code, s.purpose, "msg"); err != nil {
			t.Fatal(err)
		}
	}
	mem.fail = true
	if err := r.Send(ctx, "13800000003", "444444", app.PurposeVerify, "msg"); err == nil {
		t.Fatal("a failed send reported success")
	}
	got := r.Sends()
	if len(got) != 2 || got[0].Mobile != "13800000001" || got[0].Purpose != app.PurposeRebind || got[0].Count != 2 ||
		got[1].Mobile != "13800000002" || got[1].Count != 1 {
		t.Fatalf("sends = %+v", got)
	}
	if code, ok := r.Last("13800000001"); !ok || code != "333333" {
		t.Errorf("Last = %q, %v", code, ok)
	}
}

// TestConsoleSignInStandIns: on the way to the helpdesk console the pickers offer the demo's
// operator first and never sign in the selected identity silently; the web login (QR) stand-in
// checks its parameters like WeCom; the operator is offered nowhere else.
func TestConsoleSignInStandIns(t *testing.T) {
	f := newFixture(t)
	op := wecomtest.Member{UserID: "helpdesk", Name: "服务台", Mobile: "13900009999", Department: []int64{1}, Status: 1}
	if err := f.sim.AddMember(op); err != nil {
		t.Fatal(err)
	}
	f.console.cfg.Admin = op
	h := f.console.Handler()
	selected := http.Header{"Cookie": {selectedCookie + "=" + testPendingUser}}

	auth := authorizePath + "?" + url.Values{"appid": {testCorp}, "redirect_uri": {f.base + "/admin"}, "response_type": {"code"},
		"scope": {"snsapi_base"}, "state": {"s1"}}.Encode()
	w := serve(h, "GET", auth, nil, selected)
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.Contains(body, `data-pick="helpdesk"`) ||
		strings.Index(body, `data-pick="helpdesk"`) > strings.Index(body, `data-pick="`+testPendingUser+`"`) {
		t.Fatalf("authorize for /admin: %d\n%s", w.Code, body)
	}
	w = serve(h, "GET", strings.Replace(auth, url.QueryEscape(f.base+"/admin"), url.QueryEscape(f.base+"/me"), 1), nil, nil)
	if strings.Contains(w.Body.String(), `data-pick="helpdesk"`) {
		t.Error("the operator is offered on the way to /me")
	}

	login := func(loginType, agentID string) string {
		return webLoginPath + "?" + url.Values{"login_type": {loginType}, "appid": {testCorp}, "agentid": {agentID},
			"redirect_uri": {f.base + "/admin"}, "state": {"s2"}}.Encode()
	}
	w = serve(h, "GET", login("CorpApp", strconv.FormatInt(testAgentID, 10)), nil, selected)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "企业微信扫码登录(模拟)") || !strings.Contains(w.Body.String(), `data-pick="helpdesk"`) {
		t.Fatalf("web login: %d\n%s", w.Code, w.Body.String())
	}
	for _, bad := range []string{login("ServiceApp", strconv.FormatInt(testAgentID, 10)), login("CorpApp", "1")} {
		if w := serve(h, "GET", bad, nil, nil); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d", bad, w.Code)
		}
	}
}
