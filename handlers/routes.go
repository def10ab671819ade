package handlers

import "github.com/gin-gonic/gin"

// routes is the route table (CONTRACT §3). Groups:
//   - ops: health, readiness, metrics;
//   - callback: the WeCom event servers, authenticated by signature: no session or CSRF
//     middleware may ever be added to them;
//   - public and member H5 pages (bind, verify, unbind, me): added with the member flows, behind
//     the session and CSRF middleware of their group.
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
	e.GET("/metrics", s.handleMetrics())

	// callback
	e.GET("/wecom/callback", s.appCallback.handleCallbackVerify)
	e.POST("/wecom/callback", s.appCallback.handleCallbackEvent)
	if s.contactsCallback != nil {
		e.GET("/wecom/contacts", s.contactsCallback.handleCallbackVerify)
		e.POST("/wecom/contacts", s.contactsCallback.handleCallbackEvent)
	}

	var patterns []string
	for _, r := range e.Routes() {
		patterns = append(patterns, r.Path)
	}
	s.metrics.prepare(patterns)
}
