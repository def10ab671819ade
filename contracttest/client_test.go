package contracttest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// A member's browser without JavaScript, and the member flows it drives.

// ctResp is a response read whole.
type ctResp struct {
	status int
	header http.Header
	body   string
	url    string
}

// ctClient is a member's browser without JavaScript: a cookie jar, no automatic redirects.
type ctClient struct {
	t  *testing.T
	w  *ctWorld
	hc *http.Client
}

func (w *ctWorld) client(t *testing.T) *ctClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &ctClient{t: t, w: w, hc: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *ctClient) do(method, u string, form url.Values) *ctResp {
	c.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = c.w.base + u
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	r := &ctResp{status: resp.StatusCode, header: resp.Header, body: string(b), url: u}
	if r.status >= 500 {
		c.t.Errorf("%s %s: %d (a 5xx for something the caller did):\n%s", method, u, r.status, r.body)
	}
	return r
}

// follow turns a 303 (post/redirect/get) into the GET page it points at.
func (c *ctClient) follow(r *ctResp) *ctResp {
	c.t.Helper()
	for i := 0; r.status == http.StatusSeeOther && i < 5; i++ {
		loc, err := url.Parse(r.header.Get("Location"))
		if err != nil {
			c.t.Fatalf("bad Location %q", r.header.Get("Location"))
		}
		from, _ := url.Parse(r.url)
		r = c.do(http.MethodGet, from.ResolveReference(loc).String(), nil)
	}
	return r
}

func (c *ctClient) get(path string) *ctResp {
	c.t.Helper()
	return c.follow(c.do(http.MethodGet, path, nil))
}

// submit posts the form of page whose action is exactly action: every hidden input copied, then
// fields (each must be an input of the form). drop names hidden inputs to leave out.
func (c *ctClient) submit(page *ctResp, action string, fields map[string]string, drop ...string) *ctResp {
	c.t.Helper()
	f := ctFindForm(page.body, action)
	if f == nil {
		c.t.Fatalf("%s (%d): no form action=%q:\n%s", page.url, page.status, action, page.body)
	}
	if m := strings.ToLower(f.method); m != "post" {
		c.t.Errorf("form %s has method %q, want post", action, f.method)
	}
	vals := url.Values{}
	for _, in := range f.inputs {
		if in.typ == "hidden" && !slices.Contains(drop, in.name) {
			vals.Set(in.name, in.value)
		}
	}
	for k, v := range fields {
		if !f.has(k) {
			c.t.Fatalf("form %s has no input name=%q:\n%s", action, k, page.body)
		}
		vals.Set(k, v)
	}
	return c.follow(c.do(http.MethodPost, action, vals))
}

// ctForm is a parsed <form>.
type ctForm struct {
	action, method string
	inputs         []ctInput
}

type ctInput struct{ name, typ, value string }

func (f *ctForm) has(name string) bool {
	return slices.ContainsFunc(f.inputs, func(in ctInput) bool { return in.name == name })
}

func ctAttr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// ctForms parses every form of an HTML page.
func ctForms(page string) []*ctForm {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return nil
	}
	var forms []*ctForm
	var walk func(n *html.Node, cur *ctForm)
	walk = func(n *html.Node, cur *ctForm) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				cur = &ctForm{action: ctAttr(n, "action"), method: ctAttr(n, "method")}
				forms = append(forms, cur)
			case "input", "textarea", "select", "button":
				if cur != nil && ctAttr(n, "name") != "" {
					typ := strings.ToLower(ctAttr(n, "type"))
					if n.Data == "input" && typ == "" {
						typ = "text"
					}
					cur.inputs = append(cur.inputs, ctInput{name: ctAttr(n, "name"), typ: typ, value: ctAttr(n, "value")})
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch, cur)
		}
	}
	walk(doc, nil)
	return forms
}

func ctFindForm(page, action string) *ctForm {
	for _, f := range ctForms(page) {
		if f.action == action {
			return f
		}
	}
	return nil
}

// ctLinks returns the href of every <a>.
func ctLinks(page string) []string {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return nil
	}
	var links []string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" {
			links = append(links, ctAttr(n, "href"))
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(doc)
	return links
}

func ctWant(t *testing.T, r *ctResp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d:\n%s", r.url, r.status, status, r.body)
	}
}

func ctWant4xx(t *testing.T, r *ctResp) {
	t.Helper()
	if r.status < 400 || r.status > 499 {
		t.Errorf("%s: status %d, want 4xx:\n%.600s", r.url, r.status, r.body)
	}
}

// ctPerson is a CAS account.
type ctPerson struct {
	number, name, typ, mobile string
}

var (
	ctSeqMu sync.Mutex
	ctSeq   = 0
)

// newPerson adds a CAS account with a fresh number and mobile.
func (w *ctWorld) newPerson(name, typ string) ctPerson {
	ctSeqMu.Lock()
	ctSeq++
	n := ctSeq
	ctSeqMu.Unlock()
	p := ctPerson{number: fmt.Sprintf("20249%05d", n), name: name, typ: typ, mobile: fmt.Sprintf("1390000%04d", n)}
	w.cas.AddUser(p.number, "pw", p.name, p.typ)
	return p
}

// casLogin goes /bind → /bind/login → CAS → /bind/cas and returns the /bind/cas answer.
func (c *ctClient) casLogin(number string) *ctResp {
	c.t.Helper()
	t := c.t
	start := c.get("/bind")
	ctWant(t, start, http.StatusOK)
	hasLogin := slices.ContainsFunc(ctLinks(start.body), func(h string) bool {
		u, err := url.Parse(h)
		return err == nil && u.Path == "/bind/login"
	}) || ctFindForm(start.body, "/bind/login") != nil
	if !hasLogin {
		t.Fatalf("/bind has no link or form to /bind/login:\n%s", start.body)
	}
	login := c.do(http.MethodGet, "/bind/login", nil)
	ctWant(t, login, http.StatusFound)
	loc, err := url.Parse(login.header.Get("Location"))
	if err != nil {
		t.Fatalf("bad Location %q", login.header.Get("Location"))
	}
	service := c.w.base + "/bind/cas"
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != c.w.casBase+"/login" {
		t.Errorf("/bind/login redirects to %s, want %s/login", got, c.w.casBase)
	}
	q := loc.Query()
	if q.Get("service") != service || q.Get("renew") != "true" || len(q) != 2 {
		t.Errorf("/bind/login redirect query %v, want service=%s&renew=true", q, service)
	}
	ticket := c.w.cas.IssueTicket(number, service)
	return c.get("/bind/cas?ticket=" + url.QueryEscape(ticket))
}

// bind runs the whole bind flow for p and returns the follow page.
func (c *ctClient) bind(p ctPerson) *ctResp {
	c.t.Helper()
	page := c.casLogin(p.number)
	ctWant(c.t, page, http.StatusOK)
	done := c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile})
	ctWant(c.t, done, http.StatusOK)
	return done
}

// oauth drives GET path (/unbind or /me) through the WeCom OAuth redirect as userID.
func (c *ctClient) oauth(path, userID string) *ctResp {
	c.t.Helper()
	r := c.do(http.MethodGet, path, nil)
	ctWant(c.t, r, http.StatusFound)
	state := ctCheckOAuthRedirect(c.t, r.header.Get("Location"), c.w.base+path)
	code := c.w.wc.IssueOAuthCode(userID)
	return c.get(path + "?code=" + url.QueryEscape(code) + "&state=" + url.QueryEscape(state))
}

// ctCheckOAuthRedirect checks the exact shape of CONTRACT §3 and returns the state.
func ctCheckOAuthRedirect(t *testing.T, location, redirectURI string) string {
	t.Helper()
	prefix := ctOAuthURL + "/connect/oauth2/authorize?"
	rest, ok := strings.CutPrefix(location, prefix)
	if !ok {
		t.Fatalf("OAuth redirect %q does not start with %q", location, prefix)
	}
	query, frag, ok := strings.Cut(rest, "#")
	if !ok || frag != "wechat_redirect" {
		t.Errorf("OAuth redirect %q does not end with #wechat_redirect", location)
	}
	var keys []string
	vals := url.Values{}
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		dv, err := url.QueryUnescape(v)
		if err != nil {
			t.Fatalf("OAuth redirect %q: bad escape in %s", location, kv)
		}
		keys = append(keys, k)
		vals.Set(k, dv)
	}
	if want := []string{"appid", "redirect_uri", "response_type", "scope", "state", "agentid"}; !slices.Equal(keys, want) {
		t.Errorf("OAuth redirect parameters %v, want in order %v", keys, want)
	}
	if vals.Get("appid") != ctCorpID || vals.Get("redirect_uri") != redirectURI ||
		vals.Get("response_type") != "code" || vals.Get("scope") != "snsapi_base" ||
		vals.Get("agentid") != strconv.FormatInt(ctAgentID, 10) || vals.Get("state") == "" {
		t.Errorf("OAuth redirect %q: values %v", location, vals)
	}
	return vals.Get("state")
}
