// Package cas is the client wecampus uses to validate service tickets against the school's CAS
// server (统一身份认证). It implements app.CAS.
//
// It is an outbound adapter, a top-level package beside wecom, store and sms: it makes HTTP
// requests but serves none, so it does not import gin or handlers; package main wires it into
// app.Service. Its fake server for tests and `wecampus demo` is cas/castest.
//
// Why not a library: the maintained Go CAS client, github.com/go-cas/cas (import path
// gopkg.in/cas.v2), was evaluated and does not fit. Its ServiceTicketValidator.ValidateTicket
// can validate a ticket without being an http middleware, but it
//   - hard-codes the /serviceValidate path (CAS protocol 2); /p3/serviceValidate needs a forked
//     URL scheme and the validator ignores the scheme anyway;
//   - never sends renew=true on validation, which we rely on so that a cached SSO session cannot
//     bind someone else's identity;
//   - takes no context: the only deadline is a client-wide http.Client.Timeout;
//   - reads the response with an unbounded ReadAll and falls back to CAS 1 /validate on a 404;
//   - logs the ticket and the whole response (names, identity types) at info level through its
//     own global logger;
//   - unmarshals serviceResponse only in the http://www.yale.edu/tp/cas namespace.
//
// The Go module proxy used here also refuses both module paths (403). CAS ticket validation is one
// GET and one small XML document, so this package implements it with encoding/xml:
// namespace-tolerant, size-limited, with a deadline on every call, and with the attribute names
// configurable (cas.attributes.name / cas.attributes.type).
//
// Protocol reference: https://apereo.github.io/cas/development/protocol/CAS-Protocol-Specification.html
package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wecampus/wecampus/app"
)

// Member-facing messages.
const (
	msgUnavailable = "统一身份认证暂时无法访问,请稍后再试。"
	msgInvalid     = "登录凭据无效或已过期,请重新登录统一身份认证。"
	msgTooLarge    = "统一身份认证返回的个人信息过长,无法自助办理绑定。请联系学校信息化管理部门。"
)

const (
	defaultTimeout = 5 * time.Second
	// maxBody bounds a validation response. A serviceResponse is a few hundred bytes, but a CAS
	// server may release attributes of any length; the caller caps what it keeps of them (a name
	// is cut to WeCom's 64 characters), so a long attribute must not turn a login into an outage.
	maxBody   = 4 << 20
	maxTicket = 1024 // the spec allows 32..256 characters; be lenient, but bounded
)

// Config configures a Client; it mirrors the cas section of config.yaml.
type Config struct {
	// BaseURL is the CAS server prefix, e.g. https://authserver.example.edu.cn/authserver; login is
	// BaseURL+"/login".
	BaseURL string
	// Protocol is 3 (validate at /p3/serviceValidate) or 2 (/serviceValidate); 0 means 3.
	Protocol int
	// NameAttr and TypeAttr name the attributes holding the person's name and identity type
	// (defaults "cn" and "userType").
	NameAttr, TypeAttr string
	// PersonAttr, when set, names the attribute holding a stable person id
	// (identity.person_attribute); its value becomes CASIdentity.PersonID.
	PersonAttr string
	// Timeout bounds every call to the CAS server (default 5s).
	Timeout time.Duration
}

// Client validates CAS service tickets. It is safe for concurrent use.
type Client struct {
	base       string // BaseURL without a trailing slash
	validate   string // absolute URL of the validation endpoint
	protocol   int
	nameAttr   string
	personAttr string
	typeAttr   string
	timeout    time.Duration
	http       *http.Client
	log        *slog.Logger
}

var _ app.CAS = (*Client)(nil)

// New checks cfg and returns a Client. httpClient nil means a client of its own; log nil means
// slog.Default(). Errors list every problem, one line each, naming the offending config key.
func New(cfg Config, httpClient *http.Client, log *slog.Logger) (*Client, error) {
	var problems []error
	raw := strings.TrimSpace(cfg.BaseURL)
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		problems = append(problems, errors.New("cas.base_url: required"))
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		problems = append(problems, fmt.Errorf("cas.base_url: must be an absolute http(s) URL (got %q)", cfg.BaseURL))
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		problems = append(problems, fmt.Errorf("cas.base_url: must not carry a query, fragment or user info (got %q)", cfg.BaseURL))
	}
	c := &Client{
		protocol:   cfg.Protocol,
		nameAttr:   strings.TrimSpace(cfg.NameAttr),
		personAttr: strings.TrimSpace(cfg.PersonAttr),
		typeAttr:   strings.TrimSpace(cfg.TypeAttr),
		timeout:    cfg.Timeout,
		http:       httpClient,
		log:        log,
	}
	if u != nil {
		c.base = strings.TrimRight(u.String(), "/")
	}
	switch c.protocol {
	case 0, 3:
		c.protocol = 3
		c.validate = c.base + "/p3/serviceValidate"
	case 2:
		c.validate = c.base + "/serviceValidate"
	default:
		problems = append(problems, fmt.Errorf("cas.protocol: must be 2 or 3 (got %d)", cfg.Protocol))
	}
	if c.timeout <= 0 { // config validation refuses a non-positive cas.timeout
		c.timeout = defaultTimeout
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	if c.nameAttr == "" {
		c.nameAttr = "cn"
	}
	if c.typeAttr == "" {
		c.typeAttr = "userType"
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// LoginURL returns {base_url}/login?service=…&renew=true: renew makes CAS ask for credentials even
// when the browser holds an SSO session, so a shared phone cannot bind the previous person.
func (c *Client) LoginURL(service string) string {
	return c.base + "/login?service=" + url.QueryEscape(service) + "&renew=true"
}

// LogoutURL returns {base_url}/logout?service=…, which ends the SSO session and returns to service.
func (c *Client) LogoutURL(service string) string {
	return c.base + "/logout?service=" + url.QueryEscape(service)
}

// Validate validates ticket for service at /p3/serviceValidate (protocol 3) or /serviceValidate
// (protocol 2), with renew=true. An invalid, expired, replayed or foreign ticket is
// app.EUNAUTHORIZED; an unreachable, slow (beyond the timeout), failing or garbled server is
// app.EUNAVAILABLE.
func (c *Client) Validate(ctx context.Context, ticket, service string) (*app.CASIdentity, error) {
	ticket = strings.TrimSpace(ticket)
	if ticket == "" || len(ticket) > maxTicket || strings.ContainsFunc(ticket, isControl) {
		return nil, app.Errorf(app.EUNAUTHORIZED, "%s", msgInvalid)
	}
	if service == "" {
		return nil, errors.New("cas: validate: empty service URL")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	q := url.Values{"service": {service}, "ticket": {ticket}, "renew": {"true"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.validate+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("cas: validate: %w", err)
	}
	req.Header.Set("Accept", "application/xml, text/xml")
	req.Header.Set("User-Agent", "wecampus")

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.unavailable(fmt.Errorf("cas: GET %s: %w", c.validate, unwrapURLError(err)), start)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, c.unavailable(fmt.Errorf("cas: GET %s: read body: %w", c.validate, err), start)
	}
	if resp.StatusCode != http.StatusOK {
		// CAS answers failures with 200 and an authenticationFailure document; a 404 here usually
		// means cas.protocol does not match the server.
		return nil, c.unavailable(fmt.Errorf("cas: GET %s: HTTP %s", c.validate, resp.Status), start)
	}
	if len(body) > maxBody {
		// Not an outage: this person's identity data is more than we accept. Refuse the login
		// with a page saying why (4xx), not "try again later".
		c.log.Warn("CAS response too large", "limit_bytes", maxBody)
		return nil, app.Errorf(app.EFORBIDDEN, msgTooLarge)
	}
	r, err := parseResponse(body)
	if err != nil {
		return nil, c.unavailable(fmt.Errorf("cas: GET %s: %w", c.validate, err), start)
	}
	return c.identity(r)
}

// identity turns a parsed serviceResponse into the outcome of Validate.
func (c *Client) identity(r *response) (*app.CASIdentity, error) {
	if r.failure != nil {
		err := fmt.Errorf("cas: ticket refused: %s: %s", r.failure.code, r.failure.message)
		if r.failure.code == "INTERNAL_ERROR" {
			c.log.Warn("CAS server reported an internal error", "err", err)
			return nil, app.Wrap(app.EUNAVAILABLE, err, msgUnavailable)
		}
		c.log.Debug("CAS ticket refused", "code", r.failure.code)
		return nil, app.Wrap(app.EUNAUTHORIZED, err, msgInvalid)
	}
	if r.user == "" {
		return nil, app.Wrap(app.EUNAUTHORIZED, errors.New("cas: authenticationSuccess without a user"), msgInvalid)
	}
	id := &app.CASIdentity{Number: r.user, Name: r.attr(c.nameAttr), Type: r.attr(c.typeAttr)}
	if c.personAttr != "" {
		id.PersonID = r.attr(c.personAttr)
		if id.PersonID == "" {
			c.log.Warn("CAS response lacks identity.person_attribute; 换绑 is not offered to this person",
				"person_attr", c.personAttr, "attributes", r.attrNames())
		}
	}
	if id.Name == "" || id.Type == "" {
		// Usually cas.attributes names the wrong attributes, or the server releases none to this
		// service; list what it did send (names only) so the admin can fix the mapping.
		c.log.Warn("CAS response lacks a configured attribute",
			"name_attr", c.nameAttr, "has_name", id.Name != "",
			"type_attr", c.typeAttr, "has_type", id.Type != "",
			"attributes", r.attrNames())
	}
	if id.Name == "" {
		id.Name = id.Number // WeCom requires a name; the number is the best stand-in
	}
	return id, nil
}

// unavailable logs a failed call and wraps it as app.EUNAVAILABLE.
func (c *Client) unavailable(err error, start time.Time) error {
	c.log.Warn("CAS validation failed", "err", err, "elapsed", time.Since(start).Round(time.Millisecond))
	return app.Wrap(app.EUNAVAILABLE, err, msgUnavailable)
}

// Probe checks that the CAS server answers: GET {base_url}/login without following redirects; any
// HTTP status below 500 counts as reachable. It is meant for `wecampus config check`.
func (c *Client) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := c.base + "/login"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("cas: probe: %w", err)
	}
	req.Header.Set("User-Agent", "wecampus")
	hc := *c.http // shallow copy: same transport, but no redirects
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cas: GET %s: %w", target, unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)) // lets the connection be reused
	if resp.StatusCode >= 500 {
		return fmt.Errorf("cas: GET %s: HTTP %s", target, resp.Status)
	}
	return nil
}

// unwrapURLError drops the *url.Error layer, whose text repeats the whole URL (ticket included).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
