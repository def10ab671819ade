package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
)

// Helpers of the verify, unbind and me tests. Names are distinct from the bind tests' helpers
// (bind_env_test.go) so that both files can change independently.

// offsetClock is the service's clock moved forward by a settable offset from the wall clock; the
// flow cookies (15 minutes, wall clock) stay valid while the service's 5-minute windows pass.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// Advance moves the clock forward by d.
func (c *offsetClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// withOffsetClock installs an offsetClock as app.Service.Now; call it before the first request.
func (e *env) withOffsetClock() *offsetClock {
	c := &offsetClock{}
	e.svc.Now = c.Now
	return c
}

// expectStatus fails the test unless r has status want.
func expectStatus(t testing.TB, what string, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.status, want, r.body)
	}
}

// expectPage fails the test unless the page of r holds every one of subs.
func expectPage(t testing.TB, what string, r response, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(string(r.body), s) {
			t.Fatalf("%s: page lacks %q\n%s", what, s, r.body)
		}
	}
}

// expectNotInPage fails the test if the page of r holds any of subs.
func expectNotInPage(t testing.TB, what string, r response, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(string(r.body), s) {
			t.Fatalf("%s: page shows %q\n%s", what, s, r.body)
		}
	}
}

// expectForm fails the test unless r holds a form posting to action with an input called input.
func expectForm(t testing.TB, what string, r response, action, input string) {
	t.Helper()
	if !hasForm(string(r.body), action, input) {
		t.Fatalf("%s: no form action=%q with input %q\n%s", what, action, input, r.body)
	}
}

// smsSent counts the SMS codes stored for mobile (every purpose).
func (e *env) smsSent(mobile string) int {
	e.t.Helper()
	n, err := e.db.CountSMSCodes(context.Background(), mobile, time.Unix(0, 0))
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// smsCode returns the last code the SMS provider "sent" to mobile, checking its purpose.
func (e *env) smsCode(mobile string, purpose app.Purpose) string {
	e.t.Helper()
	code, ok := e.sms.Last(mobile)
	if !ok {
		e.t.Fatalf("no SMS code was sent to %s", mobile)
	}
	c, err := e.db.LatestSMSCode(context.Background(), mobile, "")
	if err != nil {
		e.t.Fatal(err)
	}
	if c.Purpose != purpose {
		e.t.Fatalf("last SMS code to %s has purpose %q, want %q", mobile, c.Purpose, purpose)
	}
	return code
}

// bindingStates describes every binding and the size of its audit trail, to prove that a
// request changed nothing (on either engine).
func (e *env) bindingStates() string {
	e.t.Helper()
	bs, err := e.db.FindBindings(context.Background(), app.BindingFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, x := range bs {
		fmt.Fprintf(&b, "%d %s %s %s %s %d events\n", x.ID, x.Number, x.UserID, x.Status, x.UpdatedAt, len(e.events(x.ID)))
	}
	return b.String()
}

// memberWrites counts the calls that change WeCom members.
func (e *env) memberWrites() int {
	n := 0
	for _, ep := range []string{"user/create", "user/update", "user/delete", "batch/invite", "user/tfa_succ", "user/authsucc"} {
		n += e.sim.CallCount(ep)
	}
	return n
}

// wrongCode returns a 6-digit code that is not code.
func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// events returns the audit trail of binding id.
func (e *env) events(id int64) []*app.Event {
	e.t.Helper()
	evs, err := e.db.FindEvents(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// lastEvent returns the newest audit event of binding id.
func (e *env) lastEvent(id int64) *app.Event {
	e.t.Helper()
	evs := e.events(id)
	if len(evs) == 0 {
		e.t.Fatalf("binding %d has no audit event", id)
	}
	return evs[len(evs)-1]
}

// callBodies returns the JSON bodies (or, for GET calls, the queries) of every call to endpoint.
func (e *env) callBodies(endpoint string) []map[string]string {
	e.t.Helper()
	var out []map[string]string
	for _, c := range e.sim.Calls() {
		if c.Endpoint != endpoint {
			continue
		}
		m := map[string]string{}
		if len(c.Body) > 0 {
			if err := json.Unmarshal(c.Body, &m); err != nil {
				e.t.Fatalf("%s body %q: %v", endpoint, c.Body, err)
			}
		}
		for k := range c.Query {
			if k != "access_token" {
				m[k] = c.Query.Get(k)
			}
		}
		out = append(out, m)
	}
	return out
}

var stateRe = regexp.MustCompile(`^[a-zA-Z0-9]{1,128}$`)

// oauthLocation checks that r is the 302 to WeCom OAuth that CONTRACT §3 fixes for path and
// returns its state.
func (e *env) oauthLocation(r response, path string) string {
	e.t.Helper()
	if r.status != http.StatusFound {
		e.t.Fatalf("GET %s: status %d, want 302\n%s", path, r.status, r.body)
	}
	loc := r.header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil {
		e.t.Fatalf("Location %q: %v", loc, err)
	}
	state := u.Query().Get("state")
	if !stateRe.MatchString(state) {
		e.t.Fatalf("state %q is not [a-zA-Z0-9]{1,128} (WeCom's rule)", state)
	}
	want := fmt.Sprintf("https://open.weixin.qq.com/connect/oauth2/authorize?appid=%s&redirect_uri=%s&response_type=code&scope=snsapi_base&state=%s&agentid=%d#wechat_redirect",
		testCorpID, url.QueryEscape(e.baseURL+path), state, e.sim.AgentID())
	if loc != want {
		e.t.Fatalf("Location:\n got %s\nwant %s", loc, want)
	}
	if got := u.Query().Get("redirect_uri"); got != e.baseURL+path {
		e.t.Fatalf("redirect_uri decodes to %q, want %q", got, e.baseURL+path)
	}
	return state
}

// oauth walks path's OAuth round trip for the member userID (an OAuth code issued by the
// simulator) and returns the page path answers with the code and state.
func (m *member) oauth(path, userID string) response {
	m.e.t.Helper()
	state := m.e.oauthLocation(m.get(path), path)
	return m.get(path + "?code=" + m.e.sim.IssueOAuthCode(userID) + "&state=" + state)
}

// startVerify opens the join-verification page the way WeCom does for userID (tfa mode).
func (m *member) startVerify(userID string) response {
	m.e.t.Helper()
	return m.get("/verify?code=" + m.e.sim.IssueTfaCode(userID))
}
