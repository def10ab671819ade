package cas_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/cas"
	"github.com/wecampus/wecampus/cas/castest"
)

const service = "https://wecampus.example.edu.cn/bind/cas"

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newClient(t *testing.T, base string, cfg cas.Config) *cas.Client {
	t.Helper()
	cfg.BaseURL = base
	c, err := cas.New(cfg, nil, quietLog())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func newServer(t *testing.T, opts ...castest.Option) *castest.Server {
	t.Helper()
	s := castest.New(opts...)
	t.Cleanup(s.Close)
	s.AddUser("20210001", "pw1", "张三", "student")
	s.AddUser("T1001", "pw2", "李老师", "staff")
	return s
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := app.ErrorCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
	if msg := app.ErrorMessage(err); msg == "" || !strings.ContainsFunc(msg, func(r rune) bool { return r >= 0x4e00 && r <= 0x9fff }) {
		t.Fatalf("member-facing message %q is not Chinese", msg)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  cas.Config
		ok   bool
	}{
		{"OK", cas.Config{BaseURL: "https://cas.example.edu.cn/authserver", Protocol: 3}, true},
		{"OKProtocol2", cas.Config{BaseURL: "http://127.0.0.1:8443/cas/", Protocol: 2}, true},
		{"OKDefaultProtocol", cas.Config{BaseURL: "https://cas.example.edu.cn"}, true},
		{"ErrRelative", cas.Config{BaseURL: "/authserver", Protocol: 3}, false},
		{"ErrNoHost", cas.Config{BaseURL: "https:///authserver", Protocol: 3}, false},
		{"ErrScheme", cas.Config{BaseURL: "ftp://cas.example.edu.cn", Protocol: 3}, false},
		{"ErrEmpty", cas.Config{Protocol: 3}, false},
		{"ErrQuery", cas.Config{BaseURL: "https://cas.example.edu.cn/?x=1", Protocol: 3}, false},
		{"ErrProtocol", cas.Config{BaseURL: "https://cas.example.edu.cn", Protocol: 1}, false},
		{"OKNegativeTimeoutIsDefault", cas.Config{BaseURL: "https://cas.example.edu.cn", Protocol: 3, Timeout: -time.Second}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cas.New(tc.cfg, nil, nil)
			if (err == nil) != tc.ok {
				t.Fatalf("New(%+v) err = %v, want ok=%v", tc.cfg, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "cas.") {
				t.Errorf("error %q does not name the config key", err)
			}
		})
	}
}

func TestLoginLogoutURL(t *testing.T) {
	c := newClient(t, "https://authserver.example.edu.cn/authserver/", cas.Config{Protocol: 3})
	if got, want := c.LoginURL(service),
		"https://authserver.example.edu.cn/authserver/login?service=https%3A%2F%2Fwecampus.example.edu.cn%2Fbind%2Fcas&renew=true"; got != want {
		t.Errorf("LoginURL = %s\nwant       %s", got, want)
	}
	if got, want := c.LogoutURL(service),
		"https://authserver.example.edu.cn/authserver/logout?service=https%3A%2F%2Fwecampus.example.edu.cn%2Fbind%2Fcas"; got != want {
		t.Errorf("LogoutURL = %s\nwant        %s", got, want)
	}
	// A service with its own query must survive the round trip.
	svc := "https://x.example/cb?a=1&b=2"
	u, err := url.Parse(c.LoginURL(svc))
	if err != nil || u.Query().Get("service") != svc || u.Query().Get("renew") != "true" {
		t.Errorf("LoginURL(%q) = %s does not round-trip", svc, c.LoginURL(svc))
	}
}

func TestValidate(t *testing.T) {
	ctx := context.Background()

	t.Run("OKProtocol3", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s.URL(), cas.Config{Protocol: 3})
		id, err := c.Validate(ctx, s.IssueTicket("20210001", service), service)
		if err != nil {
			t.Fatal(err)
		}
		if *id != (app.CASIdentity{Number: "20210001", Name: "张三", Type: "student"}) {
			t.Errorf("identity = %+v", *id)
		}
		v, ok := s.LastValidation()
		if !ok || v.Protocol != 3 || !v.Renew || v.Service != service {
			t.Errorf("validation request = %+v (ok=%v), want protocol 3, renew, service %s", v, ok, service)
		}
	})

	t.Run("OKProtocol2WithAttributes", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s.URL(), cas.Config{Protocol: 2})
		id, err := c.Validate(ctx, s.IssueTicket("T1001", service), service)
		if err != nil {
			t.Fatal(err)
		}
		if *id != (app.CASIdentity{Number: "T1001", Name: "李老师", Type: "staff"}) {
			t.Errorf("identity = %+v", *id)
		}
		if v, _ := s.LastValidation(); v.Protocol != 2 || !v.Renew {
			t.Errorf("validation request = %+v, want protocol 2 with renew", v)
		}
	})

	t.Run("OKProtocol2WithoutAttributes", func(t *testing.T) {
		s := newServer(t, castest.WithV2Attributes(false))
		c := newClient(t, s.URL(), cas.Config{Protocol: 2})
		id, err := c.Validate(ctx, s.IssueTicket("T1001", service), service)
		if err != nil {
			t.Fatal(err)
		}
		// No name attribute: the number stands in (WeCom needs a name); no type: empty, so the
		// identity rules refuse the person rather than guess.
		if *id != (app.CASIdentity{Number: "T1001", Name: "T1001", Type: ""}) {
			t.Errorf("identity = %+v", *id)
		}
	})

	t.Run("OKCustomAttributeNames", func(t *testing.T) {
		s := newServer(t, castest.WithAttributeNames("XM", "RYLB"))
		c := newClient(t, s.URL(), cas.Config{Protocol: 3, NameAttr: "XM", TypeAttr: "RYLB"})
		id, err := c.Validate(ctx, s.IssueTicket("20210001", service), service)
		if err != nil {
			t.Fatal(err)
		}
		if id.Name != "张三" || id.Type != "student" {
			t.Errorf("identity = %+v", *id)
		}
		// The default names find nothing on this server.
		c = newClient(t, s.URL(), cas.Config{Protocol: 3})
		id, err = c.Validate(ctx, s.IssueTicket("20210001", service), service)
		if err != nil {
			t.Fatal(err)
		}
		if id.Name != "20210001" || id.Type != "" {
			t.Errorf("identity with default attribute names = %+v", *id)
		}
	})

	t.Run("ErrInvalidTicket", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s.URL(), cas.Config{Protocol: 3})
		_, err := c.Validate(ctx, "ST-does-not-exist", service)
		wantCode(t, err, app.EUNAUTHORIZED)
		if s.Validations() != 1 {
			t.Errorf("validations = %d, want 1", s.Validations())
		}
	})

	t.Run("ErrEmptyTicket", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s.URL(), cas.Config{Protocol: 3})
		for _, tk := range []string{"", "   ", "ST-1\r\nX-Injected: 1", strings.Repeat("A", 5000)} {
			_, err := c.Validate(ctx, tk, service)
			wantCode(t, err, app.EUNAUTHORIZED)
		}
		if s.Validations() != 0 {
			t.Errorf("validations = %d, want 0: a malformed ticket must not reach the server", s.Validations())
		}
	})

	t.Run("ErrReplayedTicket", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s.URL(), cas.Config{Protocol: 3})
		tk := s.IssueTicket("20210001", service)
		if _, err := c.Validate(ctx, tk, service); err != nil {
			t.Fatal(err)
		}
		_, err := c.Validate(ctx, tk, service)
		wantCode(t, err, app.EUNAUTHORIZED)
	})

	t.Run("ErrWrongService", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s.URL(), cas.Config{Protocol: 3})
		tk := s.IssueTicket("20210001", "https://evil.example/cb")
		_, err := c.Validate(ctx, tk, service)
		wantCode(t, err, app.EUNAUTHORIZED)
	})

	t.Run("ErrExpiredTicket", func(t *testing.T) {
		now := time.Now()
		s := newServer(t, castest.WithClock(func() time.Time { return now }))
		c := newClient(t, s.URL(), cas.Config{Protocol: 3})
		tk := s.IssueTicket("20210001", service)
		now = now.Add(61 * time.Second)
		_, err := c.Validate(ctx, tk, service)
		wantCode(t, err, app.EUNAUTHORIZED)
	})

	t.Run("ErrServerDown", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s.URL(), cas.Config{Protocol: 3})
		tk := s.IssueTicket("20210001", service)
		s.SetDown(true)
		_, err := c.Validate(ctx, tk, service)
		wantCode(t, err, app.EUNAVAILABLE)
		if strings.Contains(err.Error(), tk) {
			t.Errorf("error %q repeats the ticket", err)
		}
	})

	t.Run("ErrUnreachable", func(t *testing.T) {
		s := newServer(t)
		base := s.URL()
		s.Close()
		c := newClient(t, base, cas.Config{Protocol: 3})
		tk := "ST-123-secret"
		_, err := c.Validate(ctx, tk, service)
		wantCode(t, err, app.EUNAVAILABLE)
		if strings.Contains(err.Error(), tk) {
			t.Errorf("error %q repeats the ticket", err)
		}
	})

	t.Run("ErrTimeout", func(t *testing.T) {
		s := newServer(t)
		s.SetLatency(2 * time.Second)
		c := newClient(t, s.URL(), cas.Config{Protocol: 3, Timeout: 150 * time.Millisecond})
		start := time.Now()
		_, err := c.Validate(ctx, s.IssueTicket("20210001", service), service)
		elapsed := time.Since(start)
		wantCode(t, err, app.EUNAVAILABLE)
		if elapsed > time.Second {
			t.Errorf("Validate took %s, want about the 150ms timeout", elapsed)
		}
	})

	t.Run("ErrCallerDeadline", func(t *testing.T) {
		s := newServer(t)
		s.SetLatency(2 * time.Second)
		c := newClient(t, s.URL(), cas.Config{Protocol: 3, Timeout: 10 * time.Second})
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Validate(ctx, s.IssueTicket("20210001", service), service)
		wantCode(t, err, app.EUNAVAILABLE)
		if time.Since(start) > time.Second {
			t.Errorf("Validate ignored the caller's deadline (%s)", time.Since(start))
		}
	})
}

// TestValidateResponses feeds the client hand-written server answers.
func TestValidateResponses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		code   string           // "" = success
		want   *app.CASIdentity // on success
	}{
		{name: "OtherPrefixAndNamespace", status: 200,
			body: `<?xml version="1.0" encoding="UTF-8"?>
<sso:serviceResponse xmlns:sso="http://www.yale.edu/tp/cas/v3"><sso:authenticationSuccess>
<sso:user> 20210001 </sso:user><sso:attributes><sso:cn><![CDATA[张三]]></sso:cn><sso:userType>student</sso:userType></sso:attributes>
</sso:authenticationSuccess></sso:serviceResponse>`,
			want: &app.CASIdentity{Number: "20210001", Name: "张三", Type: "student"}},
		{name: "PersonAttribute", status: 200,
			body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>u9</cas:user>
<cas:attributes><cas:cn>周九</cas:cn><cas:userType>student</cas:userType><cas:idHash>9f86d081884c7d65</cas:idHash></cas:attributes>
</cas:authenticationSuccess></cas:serviceResponse>`,
			want: &app.CASIdentity{Number: "u9", Name: "周九", Type: "student", PersonID: "9f86d081884c7d65"}},
		{name: "NoNamespace", status: 200,
			body: `<serviceResponse><authenticationSuccess><user>u1</user><attributes><cn>王五</cn><userType>staff</userType></attributes></authenticationSuccess></serviceResponse>`,
			want: &app.CASIdentity{Number: "u1", Name: "王五", Type: "staff"}},
		{name: "NameValueStyle", status: 200,
			body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>u2</cas:user>
<cas:attributes><cas:attribute name="cn" value="赵六"/><cas:attribute name="userType" value="student"/></cas:attributes>
</cas:authenticationSuccess></cas:serviceResponse>`,
			want: &app.CASIdentity{Number: "u2", Name: "赵六", Type: "student"}},
		{name: "AttributesOutsideAttributes", status: 200,
			body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>u3</cas:user>
<cas:cn>钱七</cas:cn><cas:userType>staff</cas:userType></cas:authenticationSuccess></cas:serviceResponse>`,
			want: &app.CASIdentity{Number: "u3", Name: "钱七", Type: "staff"}},
		{name: "MultiValued", status: 200,
			body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>u4</cas:user>
<cas:attributes><cas:userType></cas:userType><cas:userType>staff</cas:userType><cas:userType>student</cas:userType><cas:cn>孙八</cas:cn></cas:attributes>
</cas:authenticationSuccess></cas:serviceResponse>`,
			want: &app.CASIdentity{Number: "u4", Name: "孙八", Type: "staff"}},
		{name: "GBK", status: 200,
			body: "<?xml version=\"1.0\" encoding=\"GBK\"?><cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\"><cas:authenticationSuccess><cas:user>u5</cas:user>" +
				"<cas:attributes><cas:cn>\xd5\xc5\xc8\xfd</cas:cn></cas:attributes></cas:authenticationSuccess></cas:serviceResponse>",
			want: &app.CASIdentity{Number: "u5", Name: "张三", Type: ""}},
		{name: "ErrFailure", status: 200, code: app.EUNAUTHORIZED,
			body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationFailure code="INVALID_TICKET">Ticket ST-1 not recognized</cas:authenticationFailure></cas:serviceResponse>`},
		{name: "ErrServerInternal", status: 200, code: app.EUNAVAILABLE,
			body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationFailure code="INTERNAL_ERROR">db down</cas:authenticationFailure></cas:serviceResponse>`},
		{name: "ErrNoUser", status: 200, code: app.EUNAUTHORIZED,
			body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>  </cas:user></cas:authenticationSuccess></cas:serviceResponse>`},
		{name: "ErrGarbage", status: 200, code: app.EUNAVAILABLE, body: `<cas:serviceResponse><cas:authenticationSuccess><cas:user>x`},
		{name: "ErrHTMLPage", status: 200, code: app.EUNAVAILABLE, body: `<!doctype html><html><body><form>login</form></body></html>`},
		{name: "ErrWrongRoot", status: 200, code: app.EUNAVAILABLE, body: `<html><body>hello</body></html>`},
		{name: "ErrEmpty", status: 200, code: app.EUNAVAILABLE, body: ``},
		{name: "ErrNeither", status: 200, code: app.EUNAVAILABLE, body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"></cas:serviceResponse>`},
		{name: "ErrJSON", status: 200, code: app.EUNAVAILABLE, body: `{"serviceResponse":{"authenticationSuccess":{"user":"x"}}}`},
		{name: "Err404", status: 404, code: app.EUNAVAILABLE, body: `not found`},
		{name: "Err500", status: 500, code: app.EUNAVAILABLE, body: `boom`},
		{name: "LongName", status: 200,
			body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>u</cas:user><cas:attributes><cas:cn>` +
				strings.Repeat("x", 300<<10) + `</cas:cn></cas:attributes></cas:authenticationSuccess></cas:serviceResponse>`,
			want: &app.CASIdentity{Number: "u", Name: strings.Repeat("x", 300<<10)}},
		{name: "ErrTooLarge", status: 200, code: app.EFORBIDDEN,
			body: `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>u</cas:user><cas:attributes><cas:cn>` +
				strings.Repeat("x", 5<<20) + `</cas:cn></cas:attributes></cas:authenticationSuccess></cas:serviceResponse>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/cas/p3/serviceValidate" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c := newClient(t, srv.URL+"/cas", cas.Config{Protocol: 3, PersonAttr: "idHash"})
			id, err := c.Validate(context.Background(), "ST-1", service)
			if tc.code != "" {
				wantCode(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *id != *tc.want {
				t.Errorf("identity = %+v, want %+v", *id, *tc.want)
			}
		})
	}
}

// TestBrowserLogin walks the login page of the fake with a cookie-keeping client: renew=true must
// ask for the password even with an SSO session, and the resulting ticket must validate.
func TestBrowserLogin(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s.URL(), cas.Config{Protocol: 3})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	login := func(user, pw string) *http.Response {
		t.Helper()
		form := url.Values{"username": {user}, "password": {pw}}
		resp, err := browser.PostForm(c.LoginURL(service), form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	resp := login("20210001", "wrong")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad password: status %d, want 401", resp.StatusCode)
	}
	resp = login("20210001", "pw1")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), service+"?ticket=ST-") {
		t.Fatalf("login redirect = %q", resp.Header.Get("Location"))
	}
	id, err := c.Validate(context.Background(), loc.Query().Get("ticket"), service)
	if err != nil || id.Number != "20210001" || id.Name != "张三" {
		t.Fatalf("Validate after login = %+v, %v", id, err)
	}

	// With the SSO cookie, renew=true still shows the form...
	get := func(u string) *http.Response {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && !strings.Contains(string(body), `name="password"`) {
			t.Fatalf("GET %s: 200 without a password field", u)
		}
		return resp
	}
	if resp := get(c.LoginURL(service)); resp.StatusCode != http.StatusOK {
		t.Fatalf("renew login with SSO session: status %d, want 200 form", resp.StatusCode)
	}
	// ...while a login without renew is answered from the session, and that ticket is refused by a
	// renew=true validation: this is why LoginURL and Validate both send renew.
	noRenew := strings.TrimSuffix(c.LoginURL(service), "&renew=true")
	resp = get(noRenew)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("SSO login: status %d, want 302", resp.StatusCode)
	}
	loc, _ = url.Parse(resp.Header.Get("Location"))
	_, err = c.Validate(context.Background(), loc.Query().Get("ticket"), service)
	wantCode(t, err, app.EUNAUTHORIZED)

	// Logout ends the session and returns to the service.
	resp = get(c.LogoutURL(service))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != service {
		t.Fatalf("logout: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := get(noRenew); resp.StatusCode != http.StatusOK {
		t.Fatalf("login after logout: status %d, want 200 form", resp.StatusCode)
	}
}

func TestProbe(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	c := newClient(t, s.URL(), cas.Config{Protocol: 3, Timeout: 200 * time.Millisecond})
	if err := c.Probe(ctx); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	s.SetDown(true)
	if err := c.Probe(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Probe of a down server = %v, want a 503 error", err)
	}
	s.SetDown(false)
	s.SetLatency(time.Second)
	if err := c.Probe(ctx); err == nil {
		t.Fatal("Probe of a slow server succeeded")
	}

	// A login page that redirects elsewhere is reachable: the redirect is not followed.
	redirecting := httptest.NewServer(http.RedirectHandler("http://127.0.0.1:1/unreachable", http.StatusFound))
	defer redirecting.Close()
	if err := newClient(t, redirecting.URL, cas.Config{}).Probe(ctx); err != nil {
		t.Fatalf("Probe of a redirecting login: %v", err)
	}
	redirecting.Close()
	if err := newClient(t, redirecting.URL, cas.Config{}).Probe(ctx); err == nil {
		t.Fatal("Probe of a closed server succeeded")
	}
}
