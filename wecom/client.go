package wecom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/credential"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wecampus/wecampus/app"
)

// Defaults of Config.
const (
	DefaultAPIBase   = "https://qyapi.weixin.qq.com"
	DefaultOAuthBase = "https://open.weixin.qq.com"
	DefaultLoginBase = "https://login.work.weixin.qq.com"
	DefaultTimeout   = 5 * time.Second
)

// apiMaxBody bounds a WeCom answer (a user/list_id page of 10 000 rows is about 0.5 MB).
const apiMaxBody = 8 << 20

// Config is what the Client needs to call WeCom.
type Config struct {
	CorpID         string
	AppSecret      string // the 微校园助手 app: messages, menu, OAuth codes, user/get
	ContactsSecret string // 通讯录同步: member writes, getuserid, invite, join QR, join verification
	AgentID        int64
	APIBase        string        // default DefaultAPIBase; an egress proxy or the simulator
	OAuthBase      string        // default DefaultOAuthBase
	LoginBase      string        // web login (QR) for a PC browser; default DefaultLoginBase
	Timeout        time.Duration // deadline of one API call (token refresh and retry included); default 5s
}

// Client calls the WeCom server API for one corp and app. It implements app.WeCom.
//
// All HTTP is done here with the Client's own http.Client, so every call (gettoken included) goes
// to Config.APIBase and honours its deadline, and several Clients with different bases can live
// in one process. silenceper/wechat/v2 contributes the token cache (cache.Cache) and the wire
// types of the APIs it knows; its own API methods are not used because they ignore ctx, go
// through the process-global util.DefaultHTTPClient (no timeout) and util.SetURIModifier (one
// base per process), put the access token into their error texts, and cache both secrets' tokens
// under the same key. This package never touches those globals.
type Client struct {
	cfg       Config
	apiBase   string
	oauthBase string
	log       *slog.Logger
	http      *http.Client
	metrics   *apiMetrics
	sem       Semaphore // holds concurrencyCaps
	app       *tokSource
	contacts  *tokSource
}

var _ app.WeCom = (*Client)(nil)

type clientOptions struct {
	cache      cache.Cache
	tokens     TokenStore
	registerer prometheus.Registerer
	httpClient *http.Client
	sem        Semaphore
}

// Option configures New.
type Option func(*clientOptions)

// WithCache stores access tokens in c (default: silenceper's cache.NewMemory()). Use a shared
// cache (Redis) when several replicas run, so they do not fight over tokens.
func WithCache(c cache.Cache) Option { return func(o *clientOptions) { o.cache = c } }

// WithRegisterer registers the metrics wecampus_wecom_calls_total{endpoint,errcode} and
// wecampus_wecom_call_duration_seconds{endpoint} with r (default: not registered).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *clientOptions) { o.registerer = r }
}

// WithHTTPClient sends requests through h (default: a client with dial and TLS timeouts). The
// per-call deadline applies whatever h's own Timeout is.
func WithHTTPClient(h *http.Client) Option { return func(o *clientOptions) { o.httpClient = h } }

// New validates cfg and returns a Client. log may be nil (nothing is logged).
func New(cfg Config, log *slog.Logger, opts ...Option) (*Client, error) {
	if cfg.APIBase == "" {
		cfg.APIBase = DefaultAPIBase
	}
	if cfg.OAuthBase == "" {
		cfg.OAuthBase = DefaultOAuthBase
	}
	if cfg.LoginBase == "" {
		cfg.LoginBase = DefaultLoginBase
	}
	if cfg.Timeout <= 0 { // config validation refuses a non-positive wecom.timeout
		cfg.Timeout = DefaultTimeout
	}
	// Each problem names its config key: the wecampus command reports them as config errors.
	var problems []error
	switch {
	case cfg.CorpID == "":
		problems = append(problems, errors.New("wecom.corp_id: required"))
	case strings.ContainsAny(cfg.CorpID, " \t/?&#"):
		problems = append(problems, fmt.Errorf("wecom.corp_id: contains characters a CorpID never has (got %q)", cfg.CorpID))
	}
	if cfg.AppSecret == "" {
		problems = append(problems, errors.New("wecom.app_secret: required"))
	}
	if cfg.ContactsSecret == "" {
		problems = append(problems, errors.New("wecom.contacts_secret: required"))
	}
	if cfg.AgentID <= 0 {
		problems = append(problems, fmt.Errorf("wecom.agent_id: must be a positive integer, the AgentId of the app (got %d)", cfg.AgentID))
	}
	for _, b := range []struct{ key, v string }{{"api_base", cfg.APIBase}, {"oauth_base", cfg.OAuthBase}, {"login_base", cfg.LoginBase}} {
		if u, err := url.Parse(b.v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Errorf("wecom.%s: must be an absolute http(s) URL (got %q)", b.key, b.v))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}

	o := clientOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cache == nil {
		o.cache = cache.NewMemory()
	}
	if o.httpClient == nil {
		o.httpClient = apiDefaultHTTPClient()
	}
	if o.sem == nil {
		o.sem = newLocalSemaphore()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newAPIMetrics(o.registerer)
	if err != nil {
		return nil, fmt.Errorf("wecom: metrics: %w", err)
	}
	c := &Client{
		cfg:       cfg,
		apiBase:   strings.TrimRight(cfg.APIBase, "/"),
		oauthBase: strings.TrimRight(cfg.OAuthBase, "/"),
		log:       log,
		http:      o.httpClient,
		metrics:   m,
		sem:       o.sem,
	}
	store := tokSafeCache(o.cache)
	c.app = newTokSource(tokApp, tokCacheKey(tokApp, cfg.CorpID, c.apiBase, cfg.AppSecret), store, log,
		func(ctx context.Context) (string, int64, error) { return c.fetchToken(ctx, cfg.AppSecret) })
	c.contacts = newTokSource(tokContacts, tokCacheKey(tokContacts, cfg.CorpID, c.apiBase, cfg.ContactsSecret), store, log,
		func(ctx context.Context) (string, int64, error) { return c.fetchToken(ctx, cfg.ContactsSecret) })
	c.app.shared, c.contacts.shared = o.tokens, o.tokens
	return c, nil
}

// apiDefaultHTTPClient bounds connection set-up; the whole call is bounded by the ctx deadline.
func apiDefaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 3 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	// Enrolment-day bursts run many binds at once against one host: keep enough warm TLS
	// connections that a burst does not pay a handshake per call.
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 128
	// And no more than that in all: a flood (or a slow WeCom) makes calls wait for a connection
	// within their deadline instead of opening sockets without bound. Equal to the idle cap, so
	// every connection a burst opens can stay warm for the next; 128 connections carry far more
	// than WeCom's 10 000 calls per minute per API.
	t.MaxConnsPerHost = 128
	return &http.Client{Transport: t}
}

// AuthURL returns the OAuth2 link that brings a member back to redirectURI with a code
// (scope snsapi_base). state must be [a-zA-Z0-9], at most 128 bytes.
//
// @see https://developer.work.weixin.qq.com/document/path/91022
func (c *Client) AuthURL(redirectURI, state string) string {
	return c.oauthBase + "/connect/oauth2/authorize?appid=" + url.QueryEscape(c.cfg.CorpID) +
		"&redirect_uri=" + url.QueryEscape(redirectURI) +
		"&response_type=code&scope=snsapi_base&state=" + url.QueryEscape(state) +
		"&agentid=" + strconv.FormatInt(c.cfg.AgentID, 10) + "#wechat_redirect"
}

// WebLoginURL returns WeCom's web login link for a self-built app (企业微信扫码登录): on a PC
// browser the member scans a QR code with the WeCom app and comes back to redirectURI with a
// code that getuserinfo redeems like an OAuth code. redirectURI's domain must be the app's
// trusted domain for 企业微信授权登录. state as for AuthURL.
//
// @see https://developer.work.weixin.qq.com/document/path/98151
func (c *Client) WebLoginURL(redirectURI, state string) string {
	return strings.TrimRight(c.cfg.LoginBase, "/") + "/wwlogin/sso/login?login_type=CorpApp&appid=" + url.QueryEscape(c.cfg.CorpID) +
		"&agentid=" + strconv.FormatInt(c.cfg.AgentID, 10) +
		"&redirect_uri=" + url.QueryEscape(redirectURI) + "&state=" + url.QueryEscape(state)
}

// ProbeToken fetches a fresh access token for which ("app" or "contacts") from WeCom, bypassing
// the cache, to check the secret (`wecampus config check`).
//
// @see https://developer.work.weixin.qq.com/document/path/91039
func (c *Client) ProbeToken(ctx context.Context, which string) error {
	var t *tokSource
	switch which {
	case tokApp:
		t = c.app
	case tokContacts:
		t = c.contacts
	default:
		return fmt.Errorf("wecom: probe token: unknown secret %q (want app or contacts)", which)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	return t.probe(ctx)
}

// fetchToken calls gettoken for secret.
//
// @see https://developer.work.weixin.qq.com/document/path/91039
func (c *Client) fetchToken(ctx context.Context, secret string) (string, int64, error) {
	const op = "gettoken"
	q := url.Values{"corpid": {c.cfg.CorpID}, "corpsecret": {secret}}
	start := time.Now()
	raw, err := c.send(ctx, http.MethodGet, op, q, nil)
	var res credential.ResAccessToken
	label := ""
	switch {
	case err != nil:
		err, label = apiUnknown(op, err, time.Since(start), secret)
	default:
		if jerr := json.Unmarshal(raw, &res); jerr != nil {
			err, label = apiUnknown(op, fmt.Errorf("decode answer: %w", jerr), time.Since(start), secret)
		} else if res.ErrCode != 0 || res.AccessToken == "" {
			label = strconv.FormatInt(res.ErrCode, 10)
			err = apiError(op, int(res.ErrCode), res.ErrMsg, secret)
		} else {
			label = "0"
		}
	}
	c.observe(ctx, op, label, time.Since(start), 1, nil)
	if err != nil {
		return "", 0, err
	}
	return res.AccessToken, res.ExpiresIn, nil
}

// apiReq describes one API call.
type apiReq struct {
	op     string // API path after /cgi-bin/, e.g. "user/create"; metric label and WeComError.Op
	method string
	tok    *tokSource
	query  url.Values // without access_token
	body   any        // JSON body of a POST
	// read marks an idempotent read that may be sent once more after a transport failure
	// (never a timeout). Writes and single-use codes are never resent: a write whose outcome is
	// unknown is resolved by reading, never by writing again. (net/http itself may resend a GET
	// whose keep-alive connection dropped; every GET here is a read or idempotent in effect:
	// user/delete answers 60111 when repeated, menu/delete and user/authsucc change nothing twice.)
	read  bool
	attrs []slog.Attr // safe fields for the debug log: no token, secret or code; masked mobile
}

// call performs r within one deadline: it sends the request with the current token, refreshes the
// token once and resends once on 40014/42001, and decodes a successful answer into out (a
// silenceper-style struct that embeds util.CommonError, or nil).
func (c *Client) call(ctx context.Context, r apiReq, out any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wecom: %s: not sent: %w", r.op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var payload []byte
	if r.body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // URLs in menus and messages stay readable
		if err := enc.Encode(r.body); err != nil {
			return fmt.Errorf("wecom: %s: encode request: %w", r.op, err)
		}
		payload = buf.Bytes()
	}
	refreshed, resent := false, false
	for attempt := 1; ; attempt++ {
		tok, err := r.tok.get(ctx)
		if err != nil {
			return err
		}
		q := url.Values{"access_token": {tok}}
		for k, v := range r.query {
			q[k] = v
		}
		release, err := c.slot(ctx, r.op)
		if err != nil {
			return err
		}
		start := time.Now()
		raw, err := c.send(ctx, r.method, r.op, q, payload)
		release()
		if err != nil {
			we, label := apiUnknown(r.op, err, time.Since(start), tok)
			c.observe(ctx, r.op, label, time.Since(start), attempt, r.attrs)
			if r.read && !resent && ctx.Err() == nil && label == apiLabelTransport {
				resent = true
				continue
			}
			return we
		}
		var ce util.CommonError
		if err := json.Unmarshal(raw, &ce); err != nil {
			we, label := apiUnknown(r.op, fmt.Errorf("decode answer: %w", err), time.Since(start), tok)
			c.observe(ctx, r.op, label, time.Since(start), attempt, r.attrs)
			return we
		}
		c.observe(ctx, r.op, strconv.FormatInt(ce.ErrCode, 10), time.Since(start), attempt, r.attrs)
		switch ce.ErrCode {
		case 0:
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("wecom: %s: decode answer: %w", r.op, err)
			}
			return nil
		case 40014, 42001:
			// The token expired early or was replaced (secret reset): drop it, fetch a new one
			// and send once more; the rejected request was not applied (doc 91039).
			if !refreshed {
				refreshed = true
				if err := r.tok.drop(ctx, tok); err != nil {
					return err
				}
				continue
			}
		}
		return apiError(r.op, int(ce.ErrCode), ce.ErrMsg, tok, c.cfg.AppSecret, c.cfg.ContactsSecret)
	}
}

// send does one HTTP request to {api_base}/cgi-bin/{op}?{q} and returns the body of a 200 answer.
// Errors may contain the URL; callers pass them through apiUnknown.
func (c *Client) send(ctx context.Context, method, op string, q url.Values, payload []byte) ([]byte, error) {
	u := c.apiBase + "/cgi-bin/" + op + "?" + q.Encode()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		return nil, fmt.Errorf("http status %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, apiMaxBody))
}

// observe counts one request and logs it at debug level.
func (c *Client) observe(ctx context.Context, op, errcode string, d time.Duration, attempt int, attrs []slog.Attr) {
	c.metrics.calls.WithLabelValues(op, errcode).Inc()
	c.metrics.duration.WithLabelValues(op).Observe(d.Seconds())
	if !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	all := append([]slog.Attr{
		slog.String("op", op), slog.String("errcode", errcode),
		slog.Duration("duration", d), slog.Int("attempt", attempt),
	}, attrs...)
	c.log.LogAttrs(ctx, slog.LevelDebug, "wecom call", all...)
}
