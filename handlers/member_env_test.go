package handlers_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/wecampus/wecampus/store/storetest"
)

// withLocalBaseURL makes server.base_url the test server's own http:// origin, so that a cookie
// jar keeps the flow cookies (a https base_url marks them Secure) and CAS returns to this server.
func withLocalBaseURL() envOption { return func(c *envConfig) { c.localBase = true } }

// withMySQL puts the store in a fresh MariaDB database; the test is skipped when TEST_MYSQL_DSN
// is unset (CI sets it).
func withMySQL() envOption { return func(c *envConfig) { c.mysql = true } }

// storeKinds runs fn once on SQLite and once on MariaDB (skipped without TEST_MYSQL_DSN).
func storeKinds(t *testing.T, fn func(t *testing.T, opts ...envOption)) {
	t.Run("SQLite", func(t *testing.T) { fn(t) })
	t.Run("MariaDB", func(t *testing.T) {
		if os.Getenv("TEST_MYSQL_DSN") == "" {
			t.Skip("TEST_MYSQL_DSN is not set")
		}
		fn(t, withMySQL())
	})
}

// freshMySQL creates an empty database on the TEST_MYSQL_DSN server, dropped after the test,
// and returns its DSN.
func freshMySQL(tb testing.TB) string {
	tb.Helper()
	return storetest.FreshMySQLDSN(tb)
}

// member is one phone's browser: a cookie jar, no automatic redirects, and the last page seen
// (its forms carry the CSRF token the next POST needs).
type member struct {
	e    *env
	c    *http.Client
	last response

	header http.Header // added to every request (an Origin, a cookie set by someone else)
}

func (e *env) newMember() *member {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &member{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// get fetches a path of the service (or an absolute URL).
func (m *member) get(target string) response {
	m.e.t.Helper()
	return m.do(http.MethodGet, target, nil)
}

// post submits a form of the last page: its CSRF token is added unless fields has one.
func (m *member) post(path string, fields url.Values) response {
	m.e.t.Helper()
	if fields == nil {
		fields = url.Values{}
	}
	if _, ok := fields["csrf_token"]; !ok {
		if tok := hiddenValue(string(m.last.body), "csrf_token"); tok != "" {
			fields.Set("csrf_token", tok)
		}
	}
	return m.do(http.MethodPost, path, fields)
}

// do sends a request; on the member flows' pages it follows the service's 303 redirects
// (post/redirect/get) to the GET page they lead to, as a browser does, and the answer records the
// redirect it followed (response.via). The admin console's tests check its 303s themselves.
func (m *member) do(method, target string, form url.Values) response {
	m.e.t.Helper()
	r := m.once(method, target, form)
	for i := 0; r.status == http.StatusSeeOther && memberFlowPage(r.header.Get("Location")) && i < 5; i++ {
		via := r
		r = m.once(http.MethodGet, via.header.Get("Location"), nil)
		r.via = &via
		m.last = r
	}
	return r
}

// memberFlowPage reports whether path is a page of the member flows (bind, verify, unbind, me).
func memberFlowPage(path string) bool {
	for _, p := range []string{"/bind", "/verify", "/unbind", "/me"} {
		if path == p || strings.HasPrefix(path, p+"/") || strings.HasPrefix(path, p+"?") {
			return true
		}
	}
	return false
}

// postOnce submits a form of the last page like post, without following a redirect.
func (m *member) postOnce(path string, fields url.Values) response {
	m.e.t.Helper()
	if fields == nil {
		fields = url.Values{}
	}
	if _, ok := fields["csrf_token"]; !ok {
		fields.Set("csrf_token", hiddenValue(string(m.last.body), "csrf_token"))
	}
	return m.once(http.MethodPost, path, fields)
}

// getOnce fetches a path without following a redirect.
func (m *member) getOnce(target string) response {
	m.e.t.Helper()
	return m.once(http.MethodGet, target, nil)
}

// once sends one request; the answer becomes the last page seen.
func (m *member) once(method, target string, form url.Values) response {
	m.e.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = m.e.srv.URL + target
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		m.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range m.header {
		req.Header[k] = v
	}
	res, err := m.c.Do(req)
	if err != nil {
		m.e.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		m.e.t.Fatal(err)
	}
	m.last = response{status: res.StatusCode, header: res.Header, body: b}
	if strings.HasPrefix(target, m.e.srv.URL) {
		m.e.checkPage(method+" "+target, m.last)
	}
	return m.last
}

// login walks /bind/login → CAS (a ticket issued for number) → /bind/cas and returns that page.
func (m *member) login(number string) response {
	m.e.t.Helper()
	r := m.get("/bind/login")
	if r.status != http.StatusFound {
		m.e.t.Fatalf("/bind/login: status %d", r.status)
	}
	service := m.e.baseURL + "/bind/cas"
	ticket := m.e.cas.IssueTicket(number, service)
	return m.get("/bind/cas?ticket=" + url.QueryEscape(ticket))
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hiddenValue returns the value of the first hidden input called name in an HTML page.
func hiddenValue(page, name string) string {
	for _, m := range hiddenRe.FindAllStringSubmatch(page, -1) {
		if m[1] == name {
			return htmlUnescape(m[2])
		}
	}
	return ""
}

func htmlUnescape(s string) string {
	r := strings.NewReplacer("&#43;", "+", "&#34;", `"`, "&#39;", "'", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#x2F;", "/")
	return r.Replace(s)
}

// hasForm reports whether page holds a form posting to action with an input called input.
func hasForm(page, action, input string) bool {
	i := strings.Index(page, fmt.Sprintf(`action="%s"`, action))
	if i < 0 {
		return false
	}
	rest := page[i:]
	if end := strings.Index(rest, "</form>"); end >= 0 {
		rest = rest[:end]
	}
	return strings.Contains(rest, fmt.Sprintf(`name="%s"`, input))
}
