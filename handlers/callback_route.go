package handlers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// The callback routes (CONTRACT §3).
const (
	routeAppCallback      = "/wecom/callback"
	routeContactsCallback = "/wecom/contacts"
)

// ServeHTTP serves GET and POST on the callback routes itself and everything else through gin.
// The callback is the hot path: WeCom sends every click, message and contact change there, and
// it needs none of gin's routing or the member pages' middleware, only what serveCallback does.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost || r.Method == http.MethodGet {
		var h *callbackHandler
		switch r.URL.Path {
		case routeAppCallback:
			h = s.appCallback
		case routeContactsCallback:
			h = s.contactsCallback // nil when not configured: gin answers 404
		}
		if h != nil {
			s.serveCallback(w, r, h)
			return
		}
	}
	s.engine.ServeHTTP(w, r)
}

// callbackCall is one request on a callback route, as the callback handlers see it.
type callbackCall struct {
	w      http.ResponseWriter
	r      *http.Request
	id     string // the request id, echoed in X-Request-Id and logged
	status int    // the status written, 0 before
}

// writeStatus answers with status and an empty body.
func (x *callbackCall) writeStatus(status int) {
	x.status = status
	x.w.WriteHeader(status)
}

// write answers 200 with body of the content type mime.
func (x *callbackCall) write(mime []string, body []byte) {
	x.w.Header()["Content-Type"] = mime
	x.writeStatus(http.StatusOK)
	_, _ = x.w.Write(body) // a write error means WeCom has gone; it will try again
}

// serveCallback serves a request on a callback route with what the engine-wide middleware does
// for the other routes, minus what a callback does not need: the request id (echoed, and logged
// by the callback handler, but not put into the request's context: that copies the request),
// the handler, panic recovery, the HTTP metrics and the access log (debug for a success).
func (s *Server) serveCallback(w http.ResponseWriter, r *http.Request, h *callbackHandler) {
	x := callbackCall{w: w, r: r, id: s.ids.of(r)}
	w.Header()[HeaderRequestID] = []string{x.id}
	defer s.finishCallback(&x, h.route, time.Now())
	if r.Method == http.MethodPost {
		h.handleCallbackEvent(&x)
	} else {
		h.handleCallbackVerify(&x)
	}
}

// finishCallback is deferred by serveCallback: it recovers a panic of the handler into a 500
// (like the recovery middleware), then counts and logs the request (like accessLog).
func (s *Server) finishCallback(x *callbackCall, route string, start time.Time) {
	if rec := recover(); rec != nil {
		if rec == http.ErrAbortHandler {
			panic(rec)
		}
		s.logPanic(x.r, x.id, rec)
		if x.status == 0 { // else too late for a page; the client sees a truncated response
			x.status = http.StatusInternalServerError
			s.writeErrorPage(x.w, x.id, x.status, "系统繁忙", "系统内部错误，请稍后再试。")
		}
	}
	status := x.status
	if status == 0 {
		status = http.StatusOK // net/http's answer when the handler wrote nothing
	}
	s.logRequest(x.r, nil, route, status, start, time.Since(start), x.id)
}

// ginCallback puts a callback handler into gin's route table. ServeHTTP answers GET and POST on
// the callback routes before gin sees them; the routes are in gin's table all the same so that
// another method gets gin's 405 with the Allow header, and the route list is complete.
func ginCallback(serve func(*callbackCall)) gin.HandlerFunc {
	return func(c *gin.Context) {
		x := callbackCall{w: c.Writer, r: c.Request, id: RequestID(c)}
		serve(&x)
	}
}
