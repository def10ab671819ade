// Package handlers is the HTTP side of wecampus: the gin engine, its middleware, the operational
// endpoints, the WeCom callback endpoints and the member H5 pages (bind, verify, unbind, me).
// Handlers parse the request, make one app.Service call and render; business rules live in
// package app.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/securecookie"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/callback"
)

// DefaultMaxBodyBytes limits a callback body when Config.MaxBodyBytes is 0. WeCom's encrypted
// envelopes are a few KiB at most.
const DefaultMaxBodyBytes = 64 << 10

// Config is the server section of the configuration that the HTTP layer needs.
type Config struct {
	BaseURL        string   // server.base_url: the public origin, absolute
	SessionSecret  string   // server.session_secret (used by the flow cookies of the H5 pages)
	TrustedProxies []string // passed to gin's SetTrustedProxies; nil trusts no proxy
	MaxBodyBytes   int64    // callback body limit; 0 means DefaultMaxBodyBytes
	HelpContact    string   // server.help_contact: the help desk, shown at the foot of every member page
	// SeparateMetrics leaves /metrics out of the handler (it answers 404 there): server.metrics_addr
	// serves MetricsHandler on its own listener.
	SeparateMetrics bool

	// RateLimitPerMinute is server.rate_limit.per_minute: requests per client address and minute
	// that carry a CAS ticket or a WeCom code; 0 means DefaultRateLimitPerMinute.
	RateLimitPerMinute int
}

// Deps are the collaborators of the HTTP layer, built in main.go.
type Deps struct {
	Service       *app.Service
	AppCodec      *callback.Codec                 // GET|POST /wecom/callback
	ContactsCodec *callback.Codec                 // GET|POST /wecom/contacts; nil: that route answers 404
	Ready         func(ctx context.Context) error // /readyz probe (DB ping); nil: Service.Ping
	RedisUp       func() bool                     // whether the optional Redis answers (/readyz names it); nil: no Redis
	Registry      *prometheus.Registry            // /metrics gathers it; nil: a new registry with Go and process collectors
	Log           *slog.Logger                    // nil: slog.Default()
	// AuthURL builds the WeCom OAuth authorize URL (snsapi_base) for a redirect URI and state;
	// required for /unbind, /me and the menu entry of /verify.
	AuthURL func(redirectURI, state string) string
	// RateLimiter holds server.rate_limit; nil: an in-process LocalRateLimiter. Set a shared one
	// when several replicas serve (the limit then holds fleet-wide).
	RateLimiter RateLimiter
	// WebLoginURL builds WeCom's web login (QR) URL for a self-built app, offered by the
	// console's sign-in in a desktop browser; nil offers OAuth only.
	WebLoginURL func(redirectURI, state string) string
}

// Server holds what the handlers need. It is created by New and used only as the http.Handler
// New returns (ServeHTTP).
type Server struct {
	engine   *gin.Engine // every route but GET and POST on the callback routes
	cfg      Config
	svc      *app.Service
	ready    func(ctx context.Context) error
	redisUp  func() bool
	registry *prometheus.Registry
	log      *slog.Logger
	metrics  *metrics
	pages    *pages
	codeTTL  time.Duration // validity of SMS codes, told on the code pages
	help     *helpContact  // server.help_contact, parsed once; nil when not set

	memberPages map[string]*template.Template
	flows       *flowCodec
	guard       *browserGuard // page headers, cookie names, Origin and form body checks
	authURL     func(redirectURI, state string) string
	ids         *requestIDs
	limiter     *rateLimiter

	adminPages   map[string]*template.Template
	adminCookies *securecookie.SecureCookie // console sign-in state and flash (admin_auth.go)
	adminNames   adminCookieNames           // their wire names (__Host- on https)
	webLoginURL  func(redirectURI, state string) string

	appCallback      *callbackHandler
	contactsCallback *callbackHandler // nil when the 通讯录同步 event server is not configured
}

// New builds the HTTP handler: the lean callback routes in front of the gin engine with its
// middleware and routes. It fails on a missing dependency or an invalid setting, never panics.
func New(cfg Config, deps Deps) (http.Handler, error) {
	cfg, err := checkConfig(cfg, deps)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, svc: deps.Service, ready: deps.Ready, redisUp: deps.RedisUp, registry: deps.Registry, log: deps.Log,
		ids: newRequestIDs(), codeTTL: deps.Service.CodeTTL(), help: parseHelpContact(cfg.HelpContact)}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.ready == nil {
		s.ready = deps.Service.Ping
	}
	if err := s.buildMetrics(deps); err != nil {
		return nil, err
	}
	if err := s.buildPages(); err != nil {
		return nil, err
	}
	if err := s.buildCookies(deps); err != nil {
		return nil, err
	}
	s.appCallback = &callbackHandler{s: s, codec: deps.AppCodec, channel: app.ChannelApp, route: routeAppCallback}
	if deps.ContactsCodec != nil {
		s.contactsCallback = &callbackHandler{s: s, codec: deps.ContactsCodec, channel: app.ChannelContacts, route: routeContactsCallback}
	}
	if s.engine, err = s.newEngine(); err != nil {
		return nil, err
	}
	return s, nil
}

// checkConfig refuses missing dependencies and invalid settings and fills in defaults.
func checkConfig(cfg Config, deps Deps) (Config, error) {
	switch {
	case deps.Service == nil:
		return cfg, errors.New("handlers: Deps.Service is required")
	case deps.AppCodec == nil:
		return cfg, errors.New("handlers: Deps.AppCodec is required")
	case deps.AuthURL == nil:
		return cfg, errors.New("handlers: Deps.AuthURL is required")
	case deps.Ready == nil && deps.Service.Store == nil:
		return cfg, errors.New("handlers: Deps.Ready is nil and Service.Store is nil")
	case len(cfg.SessionSecret) < 32:
		return cfg, errors.New("handlers: server.session_secret must be at least 32 bytes")
	}
	if u, err := url.Parse(cfg.BaseURL); err != nil || u.Scheme == "" || u.Host == "" {
		return cfg, fmt.Errorf("handlers: server.base_url %q is not an absolute URL", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.RateLimitPerMinute <= 0 {
		cfg.RateLimitPerMinute = DefaultRateLimitPerMinute
	}
	return cfg, nil
}

// buildMetrics registers the HTTP metrics and, with a store, the backlog gauges.
func (s *Server) buildMetrics(deps Deps) error {
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	var err error
	if s.metrics, err = newMetrics(s.registry); err != nil {
		return err
	}
	if deps.Service.Store != nil {
		_, err = register(s.registry, newBacklogCollector(deps.Service.Backlog, s.log))
	}
	return err
}

// buildPages parses the templates once.
func (s *Server) buildPages() error {
	var err error
	if s.pages, err = parsePages(); err != nil {
		return err
	}
	if s.memberPages, err = parseMemberPages(); err != nil {
		return err
	}
	s.adminPages, err = parseAdminPages()
	return err
}

// buildCookies sets up the browser guard, the rate limiter and the cookie codecs.
func (s *Server) buildCookies(deps Deps) error {
	cfg := s.cfg
	s.limiter = &rateLimiter{shared: deps.RateLimiter, local: NewLocalRateLimiter(cfg.RateLimitPerMinute, 0, nil)}
	s.authURL = deps.AuthURL
	// Forms post to the service, which may answer with a redirect to CAS or to WeCom OAuth.
	formTargets := []string{deps.AuthURL(cfg.BaseURL+"/", "state")}
	if deps.Service.CAS != nil {
		formTargets = append(formTargets, deps.Service.LoginURL(cfg.BaseURL+"/bind/cas"))
	}
	var err error
	if s.guard, err = newBrowserGuard(cfg.BaseURL, formTargets...); err != nil {
		return err
	}
	s.flows = newFlowCodec(cfg.SessionSecret, s.guard.singleCookie(flowCookieName), s.guard.https)
	s.webLoginURL = deps.WebLoginURL
	s.adminCookies = newAdminCookies(cfg.SessionSecret)
	s.adminNames = adminCookieNames{session: s.guard.singleCookie(adminCookieName),
		login: s.guard.singleCookie(adminLoginCookieName), flash: s.guard.singleCookie(adminFlashCookieName)}
	return nil
}

// newEngine builds the gin engine of everything but the lean callback path.
func (s *Server) newEngine() (*gin.Engine, error) {
	// ReleaseMode is process-global in gin; it silences the debug route dump and warnings.
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true // 405 (with Allow) rather than 404 for a known path
	e.RedirectTrailingSlash = false // its redirect bypasses the middleware; /bind/ is just a 404
	e.RedirectFixedPath = false
	e.ContextWithFallback = true // a *gin.Context passed as a context sees the request's values
	if err := e.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("handlers: trusted proxies: %w", err)
	}
	// The client address is the rightmost X-Forwarded-For entry that is not a trusted proxy (an
	// address the trusted proxy appended), so a client cannot choose it. Only X-Forwarded-For:
	// X-Real-IP (gin's default second header) would be believed as the client sent it whenever a
	// proxy does not overwrite it.
	e.RemoteIPHeaders = []string{"X-Forwarded-For"}
	e.TrustedPlatform = ""
	s.routes(e)
	return e, nil
}

type requestIDKey struct{}

// RequestID returns the request id of the request ctx belongs to, or "" outside a request.
// A *gin.Context works too. The callback routes do not put it into the context (callbackCall
// carries it).
func RequestID(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
