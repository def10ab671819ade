package handlers

import "github.com/gin-gonic/gin"

// routes is the route table (CONTRACT §3). Groups:
//   - ops: health, readiness, metrics (unless server.metrics_addr serves them elsewhere);
//   - callback: the WeCom event servers, authenticated by signature: no session or CSRF
//     middleware may ever be added to them;
//   - member H5 pages (bind, verify, unbind, me): behind the CSRF middleware; their flow state
//     lives in a sealed cookie (flow.go). Each GET that takes a CAS ticket or a WeCom code (and so
//     calls CAS or WeCom before any login) is behind limitOutbound, the per-client rate limit
//     (server.rate_limit); /admin's OAuth return belongs there too.
//   - the helpdesk console (/admin, admin.go): a server-side session of its own, CSRF on POSTs;
//     GET /admin is behind limitOutbound too (its OAuth return redeems a WeCom code).
func (s *Server) routes(e *gin.Engine) {
	// Engine-wide, in order: the request id, the access log (it reads the status after the rest
	// ran), then recovery, inside the access log so that a panic's 500 is logged and counted.
	e.Use(s.requestID, s.accessLog, s.recovery)
	e.NoRoute(s.handleNotFound)
	e.NoMethod(s.handleMethodNotAllowed)

	// ops
	e.GET("/healthz", s.handleHealthz)
	e.GET("/readyz", s.handleReadyz)
	e.HEAD("/healthz", s.handleHealthz) // for load balancers that probe with HEAD
	e.HEAD("/readyz", s.handleReadyz)
	if !s.cfg.SeparateMetrics {
		e.GET("/metrics", s.handleMetrics())
	}

	// the site icon, which browsers ask for on their own
	e.GET("/favicon.ico", s.handleFavicon)
	e.HEAD("/favicon.ico", s.handleFavicon)

	// callback: ServeHTTP serves GET and POST here without gin (callback_route.go)
	e.GET(routeAppCallback, ginCallback(s.appCallback.handleCallbackVerify))
	e.POST(routeAppCallback, ginCallback(s.appCallback.handleCallbackEvent))
	if s.contactsCallback != nil {
		e.GET(routeContactsCallback, ginCallback(s.contactsCallback.handleCallbackVerify))
		e.POST(routeContactsCallback, ginCallback(s.contactsCallback.handleCallbackEvent))
	}

	// member pages: the browser guard first (page headers; duplicated cookies; for a POST the
	// exact Origin and the form body, before anything parses it), then a CSRF token on every
	// form; flow state in the sealed cookie (flow.go)
	m := e.Group("/", s.memberGuard, s.csrfMiddleware())
	m.GET("/bind", s.handleBindStart)
	m.GET("/bind/login", s.handleBindLogin)
	m.GET("/bind/switch", s.handleBindSwitch)
	m.GET("/bind/cas", s.limitOutbound, s.handleBindCAS)
	m.POST("/bind/mobile", s.handleBindMobile)
	m.POST("/bind/migrate/code", s.handleRebindCode)
	m.POST("/bind/migrate", s.handleRebind)
	m.GET("/verify", s.limitOutbound, s.handleVerify)
	m.POST("/verify/sms", s.handleVerifySMS)
	m.POST("/verify/confirm", s.handleVerifyConfirm)
	m.GET("/unbind", s.limitOutbound, s.handleUnbind)
	m.POST("/unbind/sms", s.handleUnbindSMS)
	m.POST("/unbind/confirm", s.handleUnbindConfirm)
	m.GET("/me", s.limitOutbound, s.handleMe)

	// post/redirect/get (CONTRACT §7): each POST answers 303 to the GET of its own path, which
	// shows the flow's current step from the flow cookie and what is stored; so do the GETs of
	// the other steps (a typed or bookmarked URL, Back). Without the flow: a restart page (4xx).
	for _, p := range []string{"/bind/mobile", "/bind/migrate/code", "/bind/migrate"} {
		m.GET(p, s.showBindStep)
	}
	for _, p := range []string{"/verify/sms", "/verify/confirm"} {
		m.GET(p, s.showVerifyPage)
	}
	for _, p := range []string{"/unbind/sms", "/unbind/confirm"} {
		m.GET(p, s.showUnbindPage)
	}

	s.adminRoutes(e)

	var patterns []string
	for _, r := range e.Routes() {
		patterns = append(patterns, r.Path)
	}
	s.metrics.prepare(patterns)
}
