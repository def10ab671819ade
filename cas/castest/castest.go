// Package castest is an in-process fake of a school CAS server, for tests and for `wecampus demo`.
//
// It speaks enough of the CAS protocol (https://apereo.github.io/cas/development/protocol/CAS-Protocol-Specification.html)
// to exercise a real client: a login form at /login that redirects to service?ticket=ST-…, an SSO
// cookie that is ignored when renew=true, /serviceValidate (protocol 2) and /p3/serviceValidate
// (protocol 3) answering real CAS XML, and /logout. Service tickets are single use (a validation
// attempt consumes them, as the spec requires), bound to the service URL they were issued for,
// and expire after a minute. Routes match on the path suffix, so Handler can be mounted under
// any prefix.
package castest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

const tgcCookie = "CASTGC"

type user struct {
	number, password, name, typ string
	extra                       [][2]string // further attributes, in order
}

type ticket struct {
	number  string
	service string
	expires time.Time
	renewed bool // issued from a presentation of credentials, not from the SSO cookie
}

// Validation records one call of a validation endpoint.
type Validation struct {
	Protocol int // 2 for /serviceValidate, 3 for /p3/serviceValidate
	Service  string
	Ticket   string
	Renew    bool
}

// Server is a fake CAS server listening on a loopback port. It is safe for concurrent use.
type Server struct {
	mu          sync.Mutex
	users       map[string]user
	tickets     map[string]ticket
	sessions    map[string]string // SSO cookie value -> number
	down        bool
	latency     time.Duration
	validations []Validation

	nameAttr, typeAttr string
	ttl                time.Duration
	v2Attributes       bool
	hints              bool
	now                func() time.Time
	addr               string
	log                *slog.Logger

	handler http.Handler
	srv     *http.Server
	url     string
}

// Option configures a Server.
type Option func(*Server)

// WithAttributeNames sets the attribute names that carry the name and the identity type
// (default "cn" and "userType", like cas.attributes in config.yaml).
func WithAttributeNames(name, typ string) Option {
	return func(s *Server) { s.nameAttr, s.typeAttr = name, typ }
}

// WithTicketTTL sets how long a service ticket stays valid (default 1 minute).
func WithTicketTTL(d time.Duration) Option { return func(s *Server) { s.ttl = d } }

// WithV2Attributes sets whether /serviceValidate (protocol 2) includes cas:attributes, as many
// real servers do (default true).
func WithV2Attributes(on bool) Option { return func(s *Server) { s.v2Attributes = on } }

// WithLoginHints lists the accounts and their passwords on the login page (for the demo).
func WithLoginHints() Option { return func(s *Server) { s.hints = true } }

// WithAddr sets the listen address (default "127.0.0.1:0", a free loopback port).
func WithAddr(addr string) Option { return func(s *Server) { s.addr = addr } }

// WithClock sets the clock used for ticket expiry (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLogger sets where the server logs failures to start or serve (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// New starts a fake CAS server. It panics if it cannot listen, like httptest.NewServer; call
// Close when done.
func New(opts ...Option) *Server {
	s := &Server{
		users:        map[string]user{},
		tickets:      map[string]ticket{},
		sessions:     map[string]string{},
		nameAttr:     "cn",
		typeAttr:     "userType",
		ttl:          time.Minute,
		v2Attributes: true,
		now:          time.Now,
		addr:         "127.0.0.1:0",
		log:          slog.Default(),
	}
	for _, o := range opts {
		o(s)
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		panic(fmt.Sprintf("castest: listen on %s: %v", s.addr, err))
	}
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("castest: serve", "err", err)
		}
	}()
	return s
}

// URL is the server's base URL, to use as cas.base_url.
func (s *Server) URL() string { return s.url }

// Handler serves the fake CAS routes; mount it anywhere (routes match on the path suffix).
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops the listener and ends open connections.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close() // shutdown timed out: cut the remaining connections
	}
}

// AddUser adds or replaces an account. An empty name or typ leaves that attribute out of the
// validation response.
func (s *Server) AddUser(number, password, name, typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[number] = user{number: number, password: password, name: name, typ: typ}
}

// SetAttribute releases one more attribute for an account added with AddUser (e.g. the person
// id of identity.person_attribute); setting it again replaces its value.
func (s *Server) SetAttribute(number, name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[number]
	for i := range u.extra {
		if u.extra[i][0] == name {
			u.extra[i][1] = value
			s.users[number] = u
			return
		}
	}
	u.extra = append(u.extra, [2]string{name, value})
	s.users[number] = u
}

// IssueTicket issues a service ticket for number and service as if the person had just typed
// their password (so it also passes renew=true validation). The account need not exist.
func (s *Server) IssueTicket(number, service string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(number, service, true)
}

// SetDown makes every route answer 503 (true) or work again (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetLatency delays every answer by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Validations is the number of validation requests received so far.
func (s *Server) Validations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.validations)
}

// LastValidation returns the most recent validation request; ok is false if there was none.
func (s *Server) LastValidation() (v Validation, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.validations) == 0 {
		return Validation{}, false
	}
	return s.validations[len(s.validations)-1], true
}

func (s *Server) issueLocked(number, service string, renewed bool) string {
	now := s.now()
	for id, t := range s.tickets { // drop expired tickets so the map stays small
		if now.After(t.expires) {
			delete(s.tickets, id)
		}
	}
	id := "ST-" + randomHex(16) + "-castest"
	s.tickets[id] = ticket{number: number, service: service, expires: now.Add(s.ttl), renewed: renewed}
	return id
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down, latency := s.down, s.latency
	s.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	if down {
		http.Error(w, "503 Service Unavailable (castest is down)", http.StatusServiceUnavailable)
		return
	}
	switch p := r.URL.Path; {
	case strings.HasSuffix(p, "/p3/serviceValidate"):
		s.handleValidate(w, r, 3)
	case strings.HasSuffix(p, "/serviceValidate"):
		s.handleValidate(w, r, 2)
	case strings.HasSuffix(p, "/login"):
		s.handleLogin(w, r)
	case strings.HasSuffix(p, "/logout"):
		s.handleLogout(w, r)
	default:
		http.NotFound(w, r)
	}
}

// handleLogin serves GET and POST /login. renew=true (or no SSO cookie) always shows the form;
// otherwise a valid SSO cookie issues a ticket straight away.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	service := r.FormValue("service")
	renew := r.FormValue("renew") == "true"
	if r.Method == http.MethodPost {
		number := strings.TrimSpace(r.PostFormValue("username"))
		password := r.PostFormValue("password")
		s.mu.Lock()
		u, ok := s.users[number]
		ok = ok && u.password == password
		var id, tgc string
		if ok {
			tgc = "TGT-" + randomHex(16)
			s.sessions[tgc] = number
			if service != "" {
				id = s.issueLocked(number, service, true)
			}
		}
		s.mu.Unlock()
		if !ok {
			s.renderLogin(w, http.StatusUnauthorized, service, renew, number, "用户名或密码错误。")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: tgcCookie, Value: tgc, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		if service == "" {
			s.renderMessage(w, http.StatusOK, "登录成功", "你已登录统一身份认证。")
			return
		}
		http.Redirect(w, r, withTicket(service, id), http.StatusSeeOther)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !renew && service != "" {
		if c, err := r.Cookie(tgcCookie); err == nil {
			s.mu.Lock()
			number, ok := s.sessions[c.Value]
			var id string
			if ok {
				id = s.issueLocked(number, service, false)
			}
			s.mu.Unlock()
			if ok {
				http.Redirect(w, r, withTicket(service, id), http.StatusFound)
				return
			}
		}
	}
	s.renderLogin(w, http.StatusOK, service, renew, "", "")
}

// handleLogout ends the SSO session and returns to service when one is given.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(tgcCookie); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: tgcCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	if service := r.FormValue("service"); service != "" {
		http.Redirect(w, r, service, http.StatusFound)
		return
	}
	s.renderMessage(w, http.StatusOK, "已退出", "你已退出统一身份认证。")
}

// handleValidate serves /serviceValidate and /p3/serviceValidate.
func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request, protocol int) {
	q := r.URL.Query()
	v := Validation{Protocol: protocol, Service: q.Get("service"), Ticket: q.Get("ticket"), Renew: q.Get("renew") == "true"}
	s.mu.Lock()
	s.validations = append(s.validations, v)
	t, found := s.tickets[v.Ticket]
	delete(s.tickets, v.Ticket) // one validation attempt per ticket, successful or not
	u := s.users[t.number]
	now := s.now()
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	switch {
	case v.Service == "" || v.Ticket == "":
		writeFailure(w, "INVALID_REQUEST", "service and ticket parameters are both required")
	case !strings.HasPrefix(v.Ticket, "ST-"):
		writeFailure(w, "INVALID_TICKET_SPEC", "ticket "+v.Ticket+" is not a service ticket")
	case !found || now.After(t.expires):
		writeFailure(w, "INVALID_TICKET", "ticket "+v.Ticket+" not recognized")
	case t.service != v.Service:
		writeFailure(w, "INVALID_SERVICE", "ticket "+v.Ticket+" does not match supplied service")
	case v.Renew && !t.renewed:
		writeFailure(w, "INVALID_TICKET", "ticket "+v.Ticket+" was not issued from primary credentials (renew)")
	default:
		attrs := protocol == 3 || s.v2Attributes
		if u.number == "" {
			u = user{number: t.number} // IssueTicket for an unknown account: no attributes
		}
		writeSuccess(w, u, attrs, s.nameAttr, s.typeAttr, t.renewed)
	}
}

func writeFailure(w http.ResponseWriter, code, message string) {
	var b strings.Builder
	b.WriteString("<cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\">\n")
	b.WriteString("  <cas:authenticationFailure code=\"" + code + "\">\n    ")
	escape(&b, message)
	b.WriteString("\n  </cas:authenticationFailure>\n</cas:serviceResponse>\n")
	_, _ = w.Write([]byte(b.String())) // the client went away: nothing left to do
}

func writeSuccess(w http.ResponseWriter, u user, withAttrs bool, nameAttr, typeAttr string, fresh bool) {
	var b strings.Builder
	b.WriteString("<cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\">\n")
	b.WriteString("  <cas:authenticationSuccess>\n    <cas:user>")
	escape(&b, u.number)
	b.WriteString("</cas:user>\n")
	if withAttrs {
		b.WriteString("    <cas:attributes>\n")
		element(&b, "authenticationDate", time.Now().UTC().Format(time.RFC3339))
		element(&b, "isFromNewLogin", fmt.Sprint(fresh))
		element(&b, "longTermAuthenticationRequestTokenUsed", "false")
		if u.name != "" {
			element(&b, nameAttr, u.name)
		}
		if u.typ != "" {
			element(&b, typeAttr, u.typ)
		}
		for _, a := range u.extra {
			element(&b, a[0], a[1])
		}
		b.WriteString("    </cas:attributes>\n")
	}
	b.WriteString("  </cas:authenticationSuccess>\n</cas:serviceResponse>\n")
	_, _ = w.Write([]byte(b.String())) // the client went away: nothing left to do
}

func element(b *strings.Builder, name, value string) {
	b.WriteString("      <cas:" + name + ">")
	escape(b, value)
	b.WriteString("</cas:" + name + ">\n")
}

func escape(b *strings.Builder, s string) {
	_ = xml.EscapeText(b, []byte(s)) // writing to a strings.Builder cannot fail
}

// withTicket appends ticket=id to service, keeping its own query.
func withTicket(service, id string) string {
	sep := "?"
	if strings.Contains(service, "?") {
		sep = "&"
	}
	return service + sep + "ticket=" + url.QueryEscape(id)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>统一身份认证(模拟)</title>
<style>body{font-family:sans-serif;max-width:26em;margin:2em auto;padding:0 1em}
label,input,button{display:block;width:100%;margin:.4em 0;box-sizing:border-box}
input,button{padding:.6em;font-size:1em}.err{color:#c00}.hint{color:#666;font-size:.9em}</style>
</head><body>
<h1>统一身份认证</h1>
<p class="hint">这是 wecampus 内置的模拟 CAS 服务器{{if .Renew}},本次登录需要重新输入密码{{end}}。</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<form method="post">
<input type="hidden" name="service" value="{{.Service}}">
{{if .Renew}}<input type="hidden" name="renew" value="true">{{end}}
<label for="username">学号/工号</label>
<input id="username" name="username" value="{{.Username}}" autocomplete="username" required>
<label for="password">密码</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">登录</button>
</form>
{{if .Users}}<p class="hint">模拟账号:</p><ul class="hint">{{range .Users}}<li>{{.Number}} / {{.Password}}{{if .Name}}({{.Name}},{{.Type}}){{end}}</li>{{end}}</ul>{{end}}
</body></html>
`))

var messagePage = template.Must(template.New("message").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))

type hintUser struct{ Number, Password, Name, Type string }

func (s *Server) renderLogin(w http.ResponseWriter, status int, service string, renew bool, username, msg string) {
	data := struct {
		Service, Username, Error string
		Renew                    bool
		Users                    []hintUser
	}{Service: service, Username: username, Error: msg, Renew: renew}
	if s.hints {
		s.mu.Lock()
		for _, u := range s.users {
			data.Users = append(data.Users, hintUser{u.number, u.password, u.name, u.typ})
		}
		s.mu.Unlock()
		sort.Slice(data.Users, func(i, j int) bool { return data.Users[i].Number < data.Users[j].Number })
	}
	render(w, status, loginPage, data)
}

func (s *Server) renderMessage(w http.ResponseWriter, status int, title, text string) {
	render(w, status, messagePage, struct{ Title, Text string }{title, text})
}

func render(w http.ResponseWriter, status int, t *template.Template, data any) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		http.Error(w, "castest: render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String())) // the client went away: nothing left to do
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+)
	return hex.EncodeToString(b)
}
