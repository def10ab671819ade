package handlers_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
)

var (
	styleElemRe    = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	styleAttrRe    = regexp.MustCompile(`(?i)<[^>]*\sstyle\s*=`)
	imgSrcRe       = regexp.MustCompile(`<img[^>]*\ssrc="([^"]*)"`)
	formActRe      = regexp.MustCompile(`<form[^>]*\saction="([^"]*)"`)
	scriptRe       = regexp.MustCompile(`(?i)<script|\son[a-z]+\s*=`)
	metaReferrerRe = regexp.MustCompile(`<meta name="referrer" content="([^"]*)">`)
	viewportRe     = regexp.MustCompile(`<meta name="viewport" content="([^"]*)">`)
	errBoxRe       = regexp.MustCompile(`<div class="err"[^>]*>`)
	inputRe        = regexp.MustCompile(`<input type="(tel|text)"`)
)

// cspDirectives splits a Content-Security-Policy into its directives.
func cspDirectives(csp string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			out[f[0]] = f[1:]
		}
	}
	return out
}

// originOfURL is scheme://host of an absolute URL, "" for a relative one.
func originOfURL(t testing.TB, raw string) string {
	u, err := url.Parse(htmlUnescape(raw))
	if err != nil {
		t.Errorf("URL %q: %v", raw, err)
		return ""
	}
	if u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// checkPage fails the test unless an HTML answer carries every browser protection of CONTRACT
// §6, and its policy lets the page render as it is: each <style> element's hash is allowed, no
// style attribute or script, each image's origin is in img-src. Every HTML answer of these tests
// goes through it (env.do, member.do, doReader).
func (e *env) checkPage(what string, r response) {
	e.t.Helper()
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		return
	}
	h := r.header
	for name, want := range map[string]string{
		"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
	} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			e.t.Errorf("%s (%d): %s = %q, want %q", what, r.status, name, got, want)
		}
	}
	if hsts, https := h.Get("Strict-Transport-Security"), strings.HasPrefix(e.baseURL, "https://"); https != (hsts != "") || (https && !strings.HasPrefix(hsts, "max-age=")) {
		e.t.Errorf("%s (%d): Strict-Transport-Security %q with base_url %s", what, r.status, hsts, e.baseURL)
	}
	csps := h.Values("Content-Security-Policy")
	if len(csps) != 1 {
		e.t.Errorf("%s (%d): Content-Security-Policy %q", what, r.status, csps)
		return
	}
	d := cspDirectives(csps[0])
	for _, name := range []string{"default-src", "frame-ancestors", "base-uri"} {
		if !slices.Equal(d[name], []string{"'none'"}) {
			e.t.Errorf("%s: CSP %s = %q, want 'none' (%s)", what, name, d[name], csps[0])
		}
	}
	if _, ok := d["script-src"]; ok || strings.Contains(csps[0], "unsafe") {
		e.t.Errorf("%s: CSP allows scripts or unsafe sources: %s", what, csps[0])
	}
	if !slices.Contains(d["form-action"], "'self'") || !slices.Contains(d["img-src"], "'self'") {
		e.t.Errorf("%s: CSP form-action/img-src lack 'self': %s", what, csps[0])
	}
	body := r.page()
	for _, m := range styleElemRe.FindAllStringSubmatch(body, -1) {
		sum := sha256.Sum256([]byte(m[1]))
		if src := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !slices.Contains(d["style-src"], src) {
			e.t.Errorf("%s: a <style> element hashes to %s, not in style-src %q", what, src, d["style-src"])
		}
	}
	if m := styleAttrRe.FindString(body); m != "" {
		e.t.Errorf("%s: a style attribute, which the CSP blocks: %s", what, m)
	}
	if m := scriptRe.FindString(body); m != "" {
		e.t.Errorf("%s: a script, which the CSP blocks: %s", what, m)
	}
	for _, m := range imgSrcRe.FindAllStringSubmatch(body, -1) {
		if o := originOfURL(e.t, m[1]); o != "" && !slices.Contains(d["img-src"], o) {
			e.t.Errorf("%s: image from %s, not in img-src %q", what, o, d["img-src"])
		}
	}
	// Under no-referrer a browser sends "Origin: null" with a form's POST: a page with a form
	// relaxes the policy to same-origin, which still sends nothing to another origin.
	metas := metaReferrerRe.FindAllStringSubmatch(body, -1)
	for _, m := range metas {
		if m[1] != "same-origin" {
			e.t.Errorf("%s: <meta name=referrer> %q", what, m[1])
		}
	}
	if formActRe.MatchString(body) && len(metas) == 0 {
		e.t.Errorf("%s: a form without <meta name=\"referrer\" content=\"same-origin\">: its POST would carry Origin: null", what)
	}
	for _, m := range formActRe.FindAllStringSubmatch(body, -1) {
		if o := originOfURL(e.t, m[1]); o != "" {
			e.t.Errorf("%s: a form posts to %s", what, m[1])
		}
	}
	if body != "" && !strings.Contains(what, "/admin") && (r.status < 300 || r.status >= 400) {
		checkAccessible(e.t, what, r.status, body)
	}
}

// checkAccessible fails the test unless a member page has the structure of WCAG 2.1 AA that can
// be read from its markup (axe-core in browsertest checks the rest, such as contrast): one
// <main> and one <h1>, zoom allowed, form errors announced, the refused input marked invalid.
func checkAccessible(t testing.TB, what string, status int, body string) {
	t.Helper()
	if n, h := strings.Count(body, "<main"), strings.Count(body, "<h1"); n != 1 || h != 1 {
		t.Errorf("%s (%d): %d <main> and %d <h1>, want one each", what, status, n, h)
	}
	for _, m := range viewportRe.FindAllStringSubmatch(body, -1) {
		if strings.Contains(m[1], "maximum-scale") || strings.Contains(m[1], "user-scalable") {
			t.Errorf("%s: the viewport blocks zooming: %q", what, m[1])
		}
	}
	for _, m := range errBoxRe.FindAllString(body, -1) {
		if !strings.Contains(m, `role="alert"`) {
			t.Errorf("%s: a form error is not announced (role=alert): %s", what, m)
		}
	}
	if status == http.StatusBadRequest && errBoxRe.MatchString(body) && inputRe.MatchString(body) &&
		(!strings.Contains(body, `aria-invalid="true"`) || !strings.Contains(body, `aria-describedby="form-error"`)) {
		t.Errorf("%s: the refused input is not marked aria-invalid and described by the error", what)
	}
}

func TestPageHeadersOnEveryKindOfAnswer(t *testing.T) {
	for _, local := range []bool{false, true} {
		var opts []envOption
		if local {
			opts = append(opts, withLocalBaseURL()) // http: no HSTS
		}
		e := newEnv(t, opts...)
		// 404, 405 and the pages of the CSRF and flow checks; each goes through checkPage.
		for _, c := range []struct {
			method, path string
			status       int
		}{
			{http.MethodGet, "/nope", http.StatusNotFound},
			{http.MethodDelete, "/bind", http.StatusMethodNotAllowed},
			{http.MethodGet, "/bind", http.StatusOK},
			{http.MethodGet, "/bind/login", http.StatusFound},
			{http.MethodGet, "/me", http.StatusFound},
			{http.MethodGet, "/bind/cas", http.StatusUnauthorized},
		} {
			r := e.newMember().do(c.method, c.path, nil)
			mustStatus(t, c.method+" "+c.path, r, c.status)
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Errorf("%s %s: Content-Type %q", c.method, c.path, r.header.Get("Content-Type"))
			}
		}
		// The redirects to CAS and to WeCom OAuth: their origins are form targets.
		csp := cspDirectives(e.do(http.MethodGet, "/bind", "", nil).header.Get("Content-Security-Policy"))
		for _, path := range []string{"/bind/login", "/me"} {
			loc := e.newMember().get(path).header.Get("Location")
			if o := originOfURL(t, loc); !slices.Contains(csp["form-action"], o) {
				t.Errorf("%s redirects to %s, not in form-action %q", path, o, csp["form-action"])
			}
		}
	}

	e := newEnv(t, withLocalBaseURL())
	// 403: a POST without a CSRF token.
	m := e.person("2021123456", "张三", "student")
	mustStatus(t, "no token", m.do(http.MethodPost, "/bind/mobile", url.Values{"mobile": {"13800001234"}}), http.StatusForbidden)
	// 200 follow page with the join QR code from another origin: img-src lets it load.
	m = e.person("2021123457", "李四", "student")
	r := m.submitMobile("13800001235")
	mustStatus(t, "follow", r, http.StatusOK)
	mustContain(t, "follow", r.page(), "<img")
	// 429: a code within the cooldown (the rebind offer page).
	e.seedBinding("2019000001", "王五", "13900000001", app.StatusActive)
	if err := e.svc.SendCode(t.Context(), "13900000001", app.PurposeVerify, ""); err != nil {
		t.Fatal(err)
	}
	m = e.person("2021000001", "王五", "student")
	mustStatus(t, "held mobile", m.submitMobile("13900000001"), http.StatusConflict)
	mustStatus(t, "cooldown", m.post("/bind/migrate/code", nil), http.StatusTooManyRequests)
	// 503: CAS is down.
	e.cas.AddUser("2021000002", "pw", "赵六", "student")
	ticket := e.cas.IssueTicket("2021000002", e.baseURL+"/bind/cas")
	e.cas.SetDown(true)
	m = e.newMember()
	m.get("/bind/login")
	mustStatus(t, "CAS down", m.get("/bind/cas?ticket="+url.QueryEscape(ticket)), http.StatusServiceUnavailable)
}

// plainJar keeps cookies by name whatever their Secure flag, so that a test browser can run the
// flows of an https base_url against the plain-http test server.
type plainJar struct {
	mu sync.Mutex
	c  []*http.Cookie
}

func (j *plainJar) SetCookies(_ *url.URL, cks []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, ck := range cks {
		j.c = slices.DeleteFunc(j.c, func(x *http.Cookie) bool { return x.Name == ck.Name })
		if ck.MaxAge >= 0 {
			j.c = append(j.c, &http.Cookie{Name: ck.Name, Value: ck.Value})
		}
	}
}

func (j *plainJar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.c)
}

// browser is a member whose cookies survive an https base_url on the test server.
func (e *env) browser() *member {
	m := e.newMember()
	m.c.Jar = &plainJar{}
	return m
}

// loggedIn returns a browser on the mobile form of a new CAS account.
func (e *env) loggedIn(number, name string) *member {
	e.t.Helper()
	e.cas.AddUser(number, "pw", name, "student")
	m := e.browser()
	if r := m.login(number); r.status != http.StatusOK || !hasForm(r.page(), "/bind/mobile", "mobile") {
		e.t.Fatalf("login %s: %d\n%s", number, r.status, r.body)
	}
	return m
}

func TestOriginCheck(t *testing.T) {
	for _, local := range []bool{false, true} {
		var opts []envOption
		if local {
			opts = append(opts, withLocalBaseURL())
		}
		e := newEnv(t, opts...)
		u, _ := url.Parse(e.baseURL)
		other := "https"
		if u.Scheme == "https" {
			other = "http" // what gorilla/csrf alone lets through: its trusted origins are hosts
		}
		m := e.loggedIn("2021123456", "张三")
		form := m.last
		for _, origin := range []string{
			"null",
			other + "://" + u.Host,
			u.Scheme + "://" + u.Hostname() + ":8443",
			u.Scheme + "://evil.example.com",
			e.baseURL + "/",
			strings.ToUpper(e.baseURL),
		} {
			m.header = http.Header{"Origin": {origin}}
			m.last = form
			r := m.submitMobile("13800001234")
			mustStatus(t, "Origin "+origin, r, http.StatusForbidden)
			mustContain(t, "Origin "+origin, r.page(), "未被受理")
			if _, ok := e.sim.Member("2021123456"); ok {
				t.Fatalf("Origin %s: the member was created", origin)
			}
		}
		// Without an Origin the CSRF token decides: none, refused; the page's, accepted.
		m.header = nil
		mustStatus(t, "no Origin, no token", m.do(http.MethodPost, "/bind/mobile", url.Values{"mobile": {"13800001234"}}), http.StatusForbidden)
		m.last = form
		mustStatus(t, "no Origin", m.submitMobile("13800001234"), http.StatusOK)
		// The exact origin.
		m = e.loggedIn("2021123457", "李四")
		m.header = http.Header{"Origin": {e.baseURL}}
		mustStatus(t, "same origin", m.submitMobile("13800001235"), http.StatusOK)
		if _, ok := e.sim.Member("2021123457"); !ok {
			t.Fatal("same origin: no member")
		}
	}
}

func TestHostCookiesWithHTTPSBaseURL(t *testing.T) {
	e := newEnv(t) // https base_url
	// The first page sets the CSRF cookie, the login the flow cookie.
	first := e.browser().get("/bind")
	m := e.loggedIn("2021000001", "张三")
	for _, c := range []struct {
		r    response
		name string
	}{{first, "__Host-wecampus_csrf"}, {m.last, "__Host-wecampus_flow"}} {
		ck := cookieNamed(c.r, c.name)
		if ck == nil || !ck.Secure || ck.Path != "/" || ck.Domain != "" || !ck.HttpOnly {
			t.Fatalf("cookie %s: %+v\n%q", c.name, ck, c.r.header["Set-Cookie"])
		}
		if cookieNamed(c.r, strings.TrimPrefix(c.name, "__Host-")) != nil {
			t.Fatalf("unprefixed cookie set: %q", c.r.header["Set-Cookie"])
		}
	}
	// A sibling subdomain can set wecampus_flow for the whole campus domain: it is not read. Here
	// it holds a valid flow of someone else; the bind is the logged-in member's.
	m.header = http.Header{"Cookie": {"wecampus_flow=" + sealFlow(t, personFlow("bind", time.Now().Add(10*time.Minute))) +
		"; wecampus_csrf=x"}}
	mustStatus(t, "sibling cookies", m.submitMobile("13800001234"), http.StatusOK)
	if _, ok := e.sim.Member("2021123456"); ok { // personFlow's number
		t.Fatal("the sibling's flow was used")
	}
	if _, ok := e.sim.Member("2021000001"); !ok {
		t.Fatal("the member's own flow was not used")
	}
}

func TestDuplicateCookieRefused(t *testing.T) {
	for _, local := range []bool{false, true} {
		var opts []envOption
		if local {
			opts = append(opts, withLocalBaseURL())
		}
		e := newEnv(t, opts...)
		prefix := "__Host-"
		if local {
			prefix = ""
		}
		m := e.loggedIn("2021000001", "张三")
		form := m.last
		for _, name := range []string{"wecampus_flow", "wecampus_csrf"} {
			// A second cookie of the name, as a path-scoped or domain cookie would add it.
			m.header = http.Header{"Cookie": {prefix + name + "=other"}}
			for _, r := range []response{m.get("/bind"), m.get("/bind/login"), func() response {
				m.last = form
				return m.submitMobile("13800001234")
			}()} {
				mustStatus(t, "duplicate "+name, r, http.StatusBadRequest)
				mustContain(t, "duplicate "+name, r.page(), "重复", `href="/bind"`)
			}
		}
		if _, ok := e.sim.Member("2021000001"); ok {
			t.Fatal("a request with a duplicated cookie bound")
		}
		m.header = nil
		m.last = form
		mustStatus(t, "single cookies", m.submitMobile("13800001234"), http.StatusOK)
	}
}
