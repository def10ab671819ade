package wecomtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/wecom/wecomtest"
)

const corp = "wwsimcorp"

// answer is a decoded WeCom answer.
type answer map[string]any

func (a answer) code() int {
	f, _ := a["errcode"].(float64)
	return int(f)
}

func (a answer) str(k string) string {
	s, _ := a[k].(string)
	return s
}

// raw calls the simulator at base and decodes its JSON answer.
func raw(t *testing.T, ctx context.Context, base, endpoint string, q url.Values, body any) (answer, error) {
	t.Helper()
	u := base + "/cgi-bin/" + endpoint + "?" + q.Encode()
	method, rd := http.MethodGet, (*bytes.Reader)(nil)
	var req *http.Request
	var err error
	if body != nil {
		method = http.MethodPost
		var b []byte
		if s, ok := body.(string); ok {
			b = []byte(s)
		} else if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
		req, err = http.NewRequestWithContext(ctx, method, u, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, u, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, err
	}
	return a, nil
}

type sim struct {
	t *testing.T
	*wecomtest.Server
}

func newSim(t *testing.T, opts ...wecomtest.Option) sim {
	s := wecomtest.New(corp, opts...)
	t.Cleanup(s.Close)
	return sim{t, s}
}

// call calls the simulator and fails the test on a transport error.
func (s sim) call(endpoint string, q url.Values, body any) answer {
	s.t.Helper()
	a, err := raw(s.t, context.Background(), s.URL(), endpoint, q, body)
	if err != nil {
		s.t.Fatalf("%s: %v", endpoint, err)
	}
	return a
}

func (s sim) token(secret string) string {
	s.t.Helper()
	a := s.call("gettoken", url.Values{"corpid": {corp}, "corpsecret": {secret}}, nil)
	if a.code() != 0 || a.str("access_token") == "" {
		s.t.Fatalf("gettoken: %v", a)
	}
	return a.str("access_token")
}

func tq(tok string, kv ...string) url.Values {
	q := url.Values{"access_token": {tok}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

func wantCode(t *testing.T, what string, a answer, code int) {
	t.Helper()
	if a.code() != code {
		t.Fatalf("%s: errcode %d (%v), want %d", what, a.code(), a["errmsg"], code)
	}
}

func member(id, mobile string, depts ...int64) map[string]any {
	if len(depts) == 0 {
		depts = []int64{1}
	}
	return map[string]any{"userid": id, "name": "张三", "mobile": mobile, "department": depts}
}

func TestGetToken(t *testing.T) {
	s := newSim(t, wecomtest.WithTokenTTL(time.Hour))
	wantCode(t, "wrong corp", s.call("gettoken", url.Values{"corpid": {"wwother"}, "corpsecret": {s.AppSecret()}}, nil), 40013)
	wantCode(t, "wrong secret", s.call("gettoken", url.Values{"corpid": {corp}, "corpsecret": {"nope"}}, nil), 40001)
	wantCode(t, "no secret", s.call("gettoken", url.Values{"corpid": {corp}}, nil), 41004)

	a1, a2 := s.token(s.AppSecret()), s.token(s.AppSecret())
	if a1 != a2 {
		t.Errorf("app token changed during its validity: %q then %q", a1, a2)
	}
	if c := s.token(s.ContactsSecret()); c == a1 {
		t.Errorf("contacts and app secret share the token %q", c)
	}
	a := s.call("gettoken", url.Values{"corpid": {corp}, "corpsecret": {s.AppSecret()}}, nil)
	if in, _ := a["expires_in"].(float64); in <= 0 || in > 3600 {
		t.Errorf("expires_in = %v, want within (0, 3600]", a["expires_in"])
	}
}

func TestTokensExpire(t *testing.T) {
	s := newSim(t, wecomtest.WithTokenTTL(time.Minute))
	tok := s.token(s.ContactsSecret())
	wantCode(t, "fresh", s.call("user/get", tq(tok, "userid", "nobody"), nil), 60111)

	s.Advance(61 * time.Second)
	wantCode(t, "after TTL", s.call("user/get", tq(tok, "userid", "nobody"), nil), 42001)
	tok2 := s.token(s.ContactsSecret())
	if tok2 == tok {
		t.Fatal("gettoken returned the expired token again")
	}
	wantCode(t, "new token", s.call("user/get", tq(tok2, "userid", "nobody"), nil), 60111)

	s.ExpireTokens()
	wantCode(t, "ExpireTokens", s.call("user/get", tq(tok2, "userid", "nobody"), nil), 42001)
	s.InvalidateTokens()
	wantCode(t, "InvalidateTokens", s.call("user/get", tq(tok2, "userid", "nobody"), nil), 40014)
	wantCode(t, "missing token", s.call("user/get", url.Values{"userid": {"x"}}, nil), 41001)
}

func TestWrongTokenKind(t *testing.T) {
	s := newSim(t)
	appTok, conTok := s.token(s.AppSecret()), s.token(s.ContactsSecret())
	text := map[string]any{"touser": "a", "msgtype": "text", "agentid": s.AgentID(), "text": map[string]string{"content": "hi"}}

	wantCode(t, "create with app token", s.call("user/create", tq(appTok), member("zs", "13800000001")), 48002)
	wantCode(t, "getuserid with app token", s.call("user/getuserid", tq(appTok), map[string]string{"mobile": "13800000001"}), 48002)
	wantCode(t, "join qrcode with app token", s.call("corp/get_join_qrcode", tq(appTok), nil), 48002)
	wantCode(t, "send with contacts token", s.call("message/send", tq(conTok), text), 48002)
	wantCode(t, "menu with contacts token", s.call("menu/get", tq(conTok, "agentid", "1000002"), nil), 48002)
	wantCode(t, "getuserinfo with contacts token", s.call("auth/getuserinfo", tq(conTok, "code", "x"), nil), 48002)
	// Either token may redeem join-verification codes.
	wantCode(t, "get_tfa_info with app token", s.call("auth/get_tfa_info", tq(appTok), map[string]string{"code": "bad"}), 40029)
	wantCode(t, "get_tfa_info with contacts token", s.call("auth/get_tfa_info", tq(conTok), map[string]string{"code": "bad"}), 40029)

	if len(s.Members()) != 0 {
		t.Errorf("a refused create stored a member: %v", s.Members())
	}
	for _, c := range s.Calls() {
		if c.Endpoint == "user/create" && c.Secret != wecomtest.SecretApp {
			t.Errorf("call recorded with Secret %q, want app", c.Secret)
		}
	}
}

func TestUserCreateValidation(t *testing.T) {
	s := newSim(t, wecomtest.WithDepartments(1, 2))
	tok := s.token(s.ContactsSecret())
	wantCode(t, "create", s.call("user/create", tq(tok), member("Zhang.San", "13800000001", 2)), 0)

	cases := []struct {
		name string
		body any
		code int
	}{
		{"userid exists, other case", member("zhang.san", "13800000002"), 60102},
		{"mobile exists", member("lisi", "13800000001"), 60104},
		{"bad mobile", member("lisi", "138-abc"), 60103},
		{"bad userid", member("-lisi", "13800000002"), 40003},
		{"empty name", map[string]any{"userid": "lisi", "name": "", "mobile": "13800000002", "department": []int{1}}, 60112},
		{"no department", map[string]any{"userid": "lisi", "name": "李四", "mobile": "13800000002"}, 60127},
		{"unknown department", member("lisi", "13800000002", 9), 60123},
		{"no mobile nor email", map[string]any{"userid": "lisi", "name": "李四", "department": []int{1}}, 60129},
		{"not JSON", "{", 47001},
	}
	for _, tc := range cases {
		wantCode(t, tc.name, s.call("user/create", tq(tok), tc.body), tc.code)
	}
	if n := len(s.Members()); n != 1 {
		t.Fatalf("%d members after refused creates, want 1", n)
	}
	m, ok := s.Member("ZHANG.SAN")
	if !ok || m.UserID != "Zhang.San" || m.Status != 4 || !m.ToInvite {
		t.Errorf("Member = %+v, %v; want Zhang.San with status 4, invited", m, ok)
	}
	if inv := s.Invites(); len(inv) != 1 || inv[0].UserID != "Zhang.San" || inv[0].Source != "create" {
		t.Errorf("Invites = %+v", inv)
	}

	// WeCom's own defaults: enable:0 creates a disabled member, to_invite:false sends nothing.
	b := member("wangwu", "13800000003")
	b["enable"], b["to_invite"] = 0, false
	wantCode(t, "create disabled", s.call("user/create", tq(tok), b), 0)
	if m, _ := s.Member("wangwu"); m.Status != 2 || m.ToInvite {
		t.Errorf("enable:0 member = %+v, want status 2, not invited", m)
	}
	if n := len(s.Invites()); n != 1 {
		t.Errorf("%d invites, want still 1", n)
	}
}

func TestUserUpdate(t *testing.T) {
	s := newSim(t)
	tok := s.token(s.ContactsSecret())
	if err := s.AddMember(wecomtest.Member{UserID: "active", Name: "甲", Mobile: "13800000001", Department: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(wecomtest.Member{UserID: "wo_sys123", Name: "乙", Mobile: "13800000002", Department: []int64{1}, Status: 4, Renamable: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(wecomtest.Member{UserID: "x", Name: "丙", Mobile: "13800000001", Department: []int64{1}}); err == nil {
		t.Fatal("AddMember accepted a taken mobile")
	}

	// An activated member's mobile is silently ignored.
	wantCode(t, "mobile of active", s.call("user/update", tq(tok), map[string]any{"userid": "active", "mobile": "13900000000"}), 0)
	if m, _ := s.Member("active"); m.Mobile != "13800000001" {
		t.Errorf("mobile of an active member changed to %s", m.Mobile)
	}
	wantCode(t, "rename fixed id", s.call("user/update", tq(tok), map[string]any{"userid": "active", "new_userid": "2021001"}), 301036)
	wantCode(t, "rename onto existing", s.call("user/update", tq(tok), map[string]any{"userid": "wo_sys123", "new_userid": "ACTIVE"}), 60102)
	wantCode(t, "mobile taken", s.call("user/update", tq(tok), map[string]any{"userid": "wo_sys123", "mobile": "13800000001"}), 60104)
	wantCode(t, "rename", s.call("user/update", tq(tok), map[string]any{"userid": "wo_sys123", "new_userid": "2021001", "name": "乙二"}), 0)
	if _, ok := s.Member("wo_sys123"); ok {
		t.Error("old userid still present after rename")
	}
	if m, ok := s.Member("2021001"); !ok || m.Name != "乙二" || m.Mobile != "13800000002" {
		t.Errorf("renamed member = %+v, %v", m, ok)
	}
	wantCode(t, "second rename", s.call("user/update", tq(tok), map[string]any{"userid": "2021001", "new_userid": "2021002"}), 301036)
	wantCode(t, "unknown", s.call("user/update", tq(tok), map[string]any{"userid": "nobody", "name": "x"}), 60111)

	wantCode(t, "disable", s.call("user/update", tq(tok), map[string]any{"userid": "active", "enable": 0}), 0)
	if m, _ := s.Member("active"); m.Status != 2 {
		t.Errorf("status after enable:0 = %d, want 2", m.Status)
	}
	wantCode(t, "enable", s.call("user/update", tq(tok), map[string]any{"userid": "active", "enable": 1}), 0)
	if m, _ := s.Member("active"); m.Status != 1 {
		t.Errorf("status after enable:1 = %d, want 1", m.Status)
	}
	wantCode(t, "delete", s.call("user/delete", tq(tok, "userid", "ACTIVE"), nil), 0)
	wantCode(t, "delete again", s.call("user/delete", tq(tok, "userid", "active"), nil), 60111)
	// The deleted member's mobile is free again.
	wantCode(t, "reuse mobile", s.call("user/create", tq(tok), member("new", "13800000001")), 0)
}

func TestOAuthCodeSingleUse(t *testing.T) {
	s := newSim(t)
	tok := s.token(s.AppSecret())
	c := s.IssueOAuthCode("zhangsan")
	a := s.call("auth/getuserinfo", tq(tok, "code", c), nil)
	wantCode(t, "first use", a, 0)
	if a.str("userid") != "zhangsan" || a.str("openid") != "" {
		t.Errorf("getuserinfo = %v", a)
	}
	wantCode(t, "second use", s.call("auth/getuserinfo", tq(tok, "code", c), nil), 40029)

	o := s.IssueOAuthCodeForOpenID("oVisitor")
	if a := s.call("auth/getuserinfo", tq(tok, "code", o), nil); a.str("openid") != "oVisitor" || a.str("userid") != "" {
		t.Errorf("visitor getuserinfo = %v", a)
	}

	late := s.IssueOAuthCode("zhangsan")
	s.Advance(5*time.Minute + time.Second)
	tok = s.token(s.AppSecret())
	wantCode(t, "expired code", s.call("auth/getuserinfo", tq(tok, "code", late), nil), 40029)
}

func TestTfaFlow(t *testing.T) {
	s := newSim(t)
	tok := s.token(s.ContactsSecret())
	if err := s.AddMember(wecomtest.Member{UserID: "zs", Name: "张三", Mobile: "13800000001", Department: []int64{1}, Status: 4}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []wecomtest.ChangeEvent
	s.OnChange(func(ev wecomtest.ChangeEvent) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
	})

	code := s.IssueTfaCode("zs")
	a := s.call("auth/get_tfa_info", tq(tok), map[string]string{"code": code})
	wantCode(t, "get_tfa_info", a, 0)
	if a.str("userid") != "zs" || a.str("tfa_code") == "" {
		t.Fatalf("get_tfa_info = %v", a)
	}
	tfa := a.str("tfa_code")
	wantCode(t, "code reused", s.call("auth/get_tfa_info", tq(tok), map[string]string{"code": code}), 40029)
	wantCode(t, "wrong tfa_code", s.call("user/tfa_succ", tq(tok), map[string]string{"userid": "zs", "tfa_code": "nope"}), 40029)
	wantCode(t, "other user", s.call("user/tfa_succ", tq(tok), map[string]string{"userid": "ls", "tfa_code": tfa}), 40029)
	if m, _ := s.Member("zs"); m.Status != 4 {
		t.Fatalf("status %d before tfa_succ", m.Status)
	}
	wantCode(t, "tfa_succ", s.call("user/tfa_succ", tq(tok), map[string]string{"userid": "zs", "tfa_code": tfa}), 0)
	if m, _ := s.Member("zs"); m.Status != 1 {
		t.Errorf("status after tfa_succ = %d, want 1", m.Status)
	}
	wantCode(t, "tfa_code reused", s.call("user/tfa_succ", tq(tok), map[string]string{"userid": "zs", "tfa_code": tfa}), 40029)
	mu.Lock()
	if len(events) != 1 || events[0] != (wecomtest.ChangeEvent{ChangeType: "update_user", UserID: "zs", Status: 1}) {
		t.Errorf("events = %+v", events)
	}
	mu.Unlock()

	// tfa_codes expire after 5 minutes.
	if err := s.AddMember(wecomtest.Member{UserID: "ls", Name: "李四", Mobile: "13800000002", Department: []int64{1}, Status: 4}); err != nil {
		t.Fatal(err)
	}
	a = s.call("auth/get_tfa_info", tq(tok), map[string]string{"code": s.IssueTfaCode("ls")})
	s.Advance(6 * time.Minute)
	tok = s.token(s.ContactsSecret())
	wantCode(t, "expired tfa_code", s.call("user/tfa_succ", tq(tok), map[string]string{"userid": "ls", "tfa_code": a.str("tfa_code")}), 40029)

	// Legacy authsucc and Join also activate and report.
	wantCode(t, "authsucc", s.call("user/authsucc", tq(tok, "userid", "ls"), nil), 0)
	if err := s.Join("ls"); err == nil {
		t.Error("Join of an active member succeeded")
	}
	if err := s.AddMember(wecomtest.Member{UserID: "ww", Name: "王五", Mobile: "13800000003", Department: []int64{1}, Status: 4}); err != nil {
		t.Fatal(err)
	}
	if err := s.Join("ww"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 3 || events[1].UserID != "ls" || events[2].UserID != "ww" {
		t.Errorf("events = %+v", events)
	}
}

func TestListIDPaging(t *testing.T) {
	s := newSim(t)
	tok := s.token(s.ContactsSecret())
	for _, id := range []string{"a", "b", "c"} {
		if err := s.AddMember(wecomtest.Member{UserID: id, Name: id, Department: []int64{1, 2}}); err != nil {
			t.Fatal(err)
		}
	}
	var rows []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("cursor never ends")
		}
		a := s.call("user/list_id", tq(tok), map[string]any{"cursor": cursor, "limit": 4})
		wantCode(t, "list_id", a, 0)
		du, _ := a["dept_user"].([]any)
		if len(du) > 4 {
			t.Fatalf("page of %d rows with limit 4", len(du))
		}
		for _, r := range du {
			m := r.(map[string]any)
			rows = append(rows, fmt.Sprintf("%v/%v", m["userid"], m["department"]))
		}
		cursor = a.str("next_cursor")
		if cursor == "" {
			break
		}
	}
	want := "a/1 a/2 b/1 b/2 c/1 c/2"
	if got := strings.Join(rows, " "); got != want {
		t.Errorf("rows = %s, want %s", got, want)
	}
	wantCode(t, "bad cursor", s.call("user/list_id", tq(tok), map[string]any{"cursor": "garbage", "limit": 4}), 40058)
	wantCode(t, "bad limit", s.call("user/list_id", tq(tok), map[string]any{"limit": 10001}), 40058)
}

func TestGetUserIDMisses(t *testing.T) {
	s := newSim(t)
	tok := s.token(s.ContactsSecret())
	if err := s.AddMember(wecomtest.Member{UserID: "zs", Name: "张三", Mobile: "13800000001", Department: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	if a := s.call("user/getuserid", tq(tok), map[string]string{"mobile": "13800000001"}); a.code() != 0 || a.str("userid") != "zs" {
		t.Errorf("hit = %v", a)
	}
	wantCode(t, "miss", s.call("user/getuserid", tq(tok), map[string]string{"mobile": "13800000009"}), 46004)
	wantCode(t, "miss", s.call("user/getuserid", tq(tok), map[string]string{"mobile": "13800000008"}), 46004)
	if n := s.GetUserIDMisses(); n != 2 {
		t.Errorf("GetUserIDMisses = %d, want 2", n)
	}
}

func TestFaultInjection(t *testing.T) {
	s := newSim(t)
	tok := s.token(s.ContactsSecret())
	s.Inject("user/get", 2, wecomtest.Fault{ErrCode: -1})
	s.Inject("user/get", 1, wecomtest.Fault{ErrCode: 45009})
	for i, want := range []int{-1, -1, 45009, 60111, 60111} {
		wantCode(t, fmt.Sprintf("call %d", i+1), s.call("user/get", tq(tok, "userid", "x"), nil), want)
	}
	if n := s.CallCount("user/get"); n != 5 {
		t.Errorf("CallCount = %d, want 5", n)
	}
	faulted := 0
	for _, c := range s.Calls() {
		if c.Faulted {
			faulted++
		}
	}
	if faulted != 3 {
		t.Errorf("%d faulted calls, want 3", faulted)
	}

	// Drop applies the write and never answers: the client gives up, the member exists.
	s.Inject("user/create", 1, wecomtest.Fault{Drop: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	start := time.Now()
	_, err := raw(t, ctx, s.URL(), "user/create", tq(tok), member("dropped", "13800000001"))
	cancel()
	if err == nil {
		t.Fatal("dropped call answered")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("dropped call took %v to give up", d)
	}
	if _, ok := s.Member("dropped"); !ok {
		t.Error("Drop did not apply the write")
	}

	// NotApplied loses the request before it is applied.
	s.Inject("user/create", 1, wecomtest.Fault{Reset: true, NotApplied: true})
	if _, err := raw(t, context.Background(), s.URL(), "user/create", tq(tok), member("lost", "13800000002")); err == nil {
		t.Fatal("reset call answered")
	}
	if _, ok := s.Member("lost"); ok {
		t.Error("NotApplied write was applied")
	}

	// Latency applies, then answers late.
	s.Inject("user/create", 1, wecomtest.Fault{Latency: 100 * time.Millisecond})
	start = time.Now()
	wantCode(t, "late", s.call("user/create", tq(tok), member("late", "13800000003")), 0)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("latency fault answered after %v", d)
	}
	// After the injected calls, the endpoint behaves normally again.
	wantCode(t, "normal", s.call("user/create", tq(tok), member("normal", "13800000004")), 0)

	s.SetLatency(60 * time.Millisecond)
	start = time.Now()
	wantCode(t, "slow", s.call("user/get", tq(tok, "userid", "normal"), nil), 0)
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("SetLatency: answered after %v", d)
	}
	s.SetLatency(0)

	s.Inject("gettoken", 1, wecomtest.Fault{HTTPStatus: http.StatusBadGateway})
	resp, err := http.Get(s.URL() + "/cgi-bin/gettoken?corpid=" + corp + "&corpsecret=" + s.AppSecret())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("HTTPStatus fault gave %d", resp.StatusCode)
	}
}

func TestMessagesAndMenu(t *testing.T) {
	s := newSim(t)
	tok := s.token(s.AppSecret())
	if err := s.AddMember(wecomtest.Member{UserID: "ZS", Name: "张三", Department: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	text := func(to string, agent any) map[string]any {
		return map[string]any{"touser": to, "msgtype": "text", "agentid": agent, "text": map[string]string{"content": "欢迎"}}
	}
	wantCode(t, "other agent", s.call("message/send", tq(tok), text("zs", 1000003)), 301002)
	wantCode(t, "all invalid", s.call("message/send", tq(tok), text("nobody", s.AgentID())), 81013)
	a := s.call("message/send", tq(tok), text("zs|Nobody", "1000002"))
	wantCode(t, "partly valid", a, 0)
	if a.str("invaliduser") != "nobody" {
		t.Errorf("invaliduser = %q", a.str("invaliduser"))
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].ToUser != "ZS" || msgs[0].Content != "欢迎" || msgs[0].AgentID != s.AgentID() {
		t.Errorf("Messages = %+v", msgs)
	}

	agent := tq(tok, "agentid", "1000002")
	wantCode(t, "no menu", s.call("menu/get", agent, nil), 46003)
	wantCode(t, "bad agentid", s.call("menu/get", tq(tok, "agentid", "abc"), nil), 40056)
	wantCode(t, "foreign agentid", s.call("menu/get", tq(tok, "agentid", "1000003"), nil), 301002)
	wantCode(t, "four buttons", s.call("menu/create", agent, map[string]any{"button": []map[string]string{
		{"type": "click", "name": "a", "key": "A"}, {"type": "click", "name": "b", "key": "B"},
		{"type": "click", "name": "c", "key": "C"}, {"type": "click", "name": "d", "key": "D"}}}), 40016)
	wantCode(t, "view without url", s.call("menu/create", agent, map[string]any{"button": []map[string]string{{"type": "view", "name": "a"}}}), 40020)
	wantCode(t, "create", s.call("menu/create", agent, map[string]any{"button": []map[string]string{{"type": "click", "name": "绑定状态", "key": "HELP"}}}), 0)
	if m := s.Menu(s.AgentID()); len(m) != 1 || m[0].Key != "HELP" {
		t.Errorf("Menu = %+v", m)
	}
	wantCode(t, "delete", s.call("menu/delete", agent, nil), 0)
	wantCode(t, "deleted", s.call("menu/get", agent, nil), 46003)
}

// TestDuplicateCheck: with enable_duplicate_check a message identical to one accepted within
// duplicate_check_interval is answered ok and not delivered; without it, or after the interval,
// or with other content, it is delivered.
func TestDuplicateCheck(t *testing.T) {
	s := newSim(t)
	tok := s.token(s.AppSecret())
	if err := s.AddMember(wecomtest.Member{UserID: "zs", Name: "张三", Department: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	send := func(content string, check int) {
		t.Helper()
		body := map[string]any{"touser": "zs", "msgtype": "text", "agentid": s.AgentID(), "text": map[string]string{"content": content},
			"enable_duplicate_check": check, "duplicate_check_interval": 60}
		wantCode(t, content, s.call("message/send", tq(tok), body), 0)
	}
	send("欢迎", 1)
	send("欢迎", 1)
	send("欢迎", 0) // no check asked: delivered
	send("你好", 1)
	if n, d := len(s.Messages()), s.Duplicates(); n != 3 || d != 1 {
		t.Fatalf("delivered %d, dropped %d; want 3 and 1", n, d)
	}
	s.Advance(61 * time.Second)
	send("欢迎", 1)
	if n := len(s.Messages()); n != 4 {
		t.Fatalf("after the interval: delivered %d, want 4", n)
	}
}

// TestApplyAfter: a write held by ApplyAfter is applied late, after a client that gave up.
func TestApplyAfter(t *testing.T) {
	s := newSim(t)
	tok := s.token(s.ContactsSecret())
	s.Inject("user/create", 1, wecomtest.Fault{ApplyAfter: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := raw(t, ctx, s.URL(), "user/create", tq(tok), member("late", "13800000009")); err == nil {
		t.Fatal("held call answered")
	}
	if _, ok := s.Member("late"); ok {
		t.Fatal("applied before ApplyAfter")
	}
	time.Sleep(500 * time.Millisecond)
	if _, ok := s.Member("late"); !ok {
		t.Fatal("not applied after ApplyAfter")
	}
}

func TestHandlerMounted(t *testing.T) {
	s := wecomtest.New(corp)
	defer s.Close()
	mux := http.NewServeMux()
	mux.Handle("/wecomsim/", s.Handler())
	ts := httptest.NewServer(mux)
	defer ts.Close()

	base := ts.URL + "/wecomsim"
	a, err := raw(t, context.Background(), base, "gettoken", url.Values{"corpid": {corp}, "corpsecret": {s.ContactsSecret()}}, nil)
	if err != nil || a.code() != 0 {
		t.Fatalf("gettoken through mount: %v %v", a, err)
	}
	a, err = raw(t, context.Background(), base, "corp/get_join_qrcode", tq(a.str("access_token"), "size_type", "2"), nil)
	if err != nil || a.code() != 0 {
		t.Fatalf("join qrcode: %v %v", a, err)
	}
	qr := a.str("join_qrcode")
	if !strings.HasPrefix(qr, base+"/") || !strings.HasSuffix(qr, "size_type=2") {
		t.Fatalf("join_qrcode = %q, want under %s", qr, base)
	}
	resp, err := http.Get(qr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/svg") {
		t.Errorf("QR image: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestTfaConcurrencyCap(t *testing.T) {
	s := newSim(t)
	tok := s.token(s.ContactsSecret())
	if err := s.AddMember(wecomtest.Member{UserID: "zs", Name: "张三", Mobile: "13800000001", Department: []int64{1}, Status: 4}); err != nil {
		t.Fatal(err)
	}
	s.SetLatency(200 * time.Millisecond)
	answers := make([]answer, 25)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = s.call("auth/get_tfa_info", tq(tok), map[string]string{"code": s.IssueTfaCode("zs")})
		}()
	}
	wg.Wait()
	busy := 0
	for _, a := range answers {
		switch a.code() {
		case 0:
		case 45033:
			busy++
		default:
			t.Fatalf("get_tfa_info: %v", a)
		}
	}
	// 25 arrived at once: WeCom takes 20 and refuses the others at once with 45033.
	if got := s.MaxInFlight("auth/get_tfa_info"); busy != 5 || got < 21 {
		t.Fatalf("%d refused, %d in flight at most; want 5 refused, more than 20 in flight", busy, got)
	}
	if s.MaxInFlight("user/tfa_succ") != 0 || s.MaxInFlight("gettoken") != 1 {
		t.Fatalf("in flight per endpoint: tfa_succ %d, gettoken %d", s.MaxInFlight("user/tfa_succ"), s.MaxInFlight("gettoken"))
	}
}
