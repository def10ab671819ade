package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = "X-Request-Id"

// maxLoggedPath bounds the path written to the access log; a client chooses it.
const maxLoggedPath = 256

// requestIDs generates request ids: a random per-process prefix and a counter. Unique within the
// process and across restarts, and far cheaper than reading crypto/rand on every request.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (g *requestIDs) next() string {
	var buf [40]byte
	b := append(buf[:0], g.prefix...)
	b = strconv.AppendUint(b, g.n.Add(1), 36)
	return string(b)
}

// saneRequestID accepts an incoming X-Request-Id only if it is short and made of characters that
// are safe in logs and headers.
func saneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':':
		default:
			return false
		}
	}
	return true
}

// of returns the request's sane incoming X-Request-Id, or a new id.
func (g *requestIDs) of(r *http.Request) string {
	if id := r.Header.Get(HeaderRequestID); saneRequestID(id) {
		return id
	}
	return g.next()
}

// requestID takes a sane incoming X-Request-Id or makes one, echoes it in the response and puts
// it into the request context (RequestID reads it back).
func (s *Server) requestID(c *gin.Context) {
	id := s.ids.of(c.Request)
	c.Writer.Header()[HeaderRequestID] = []string{id}
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestIDKey{}, id))
	c.Next()
}

// accessLog counts each request in the HTTP metrics and logs it (logRequest).
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.logRequest(c.Request, c, c.FullPath(), c.Writer.Status(), start, time.Since(start), RequestID(c.Request.Context()))
}

// logRequest counts a finished request in the HTTP metrics and writes its access log line:
// "http GET" (the method is in the message), path (never the query string: OAuth codes and CAS
// tickets travel there), status, latency, request id and client IP. route is the matched
// pattern ("" when none matched); c is nil for a request served without gin. It is on the
// callback's hot path, so it builds the record itself: no caller PC (runtime.Callers; the source
// would always be this line), no second clock read, and at most five attributes, which slog
// keeps without allocating.
func (s *Server) logRequest(r *http.Request, c *gin.Context, route string, status int, start time.Time, d time.Duration, id string) {
	method := r.Method
	s.metrics.observeRequest(route, method, status, d)

	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case status < 400 && quietRoutes[route]:
		// Successful callbacks and probes are counted in /metrics; logging each one at info
		// would drown the member flows (and cost ~1 µs on the callback's hot path).
		level = slog.LevelDebug
	}
	ctx := r.Context()
	h := s.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	path := r.URL.Path
	if len(path) > maxLoggedPath {
		path = path[:maxLoggedPath]
	}
	msg, known := accessLogMessages[method]
	if !known {
		msg = "http request"
	}
	rec := slog.NewRecord(start.Add(d), level, msg, 0)
	rec.AddAttrs(
		slog.String("path", path),
		slog.Int("status", status),
		slog.Duration("latency", d),
		slog.String("request_id", id),
		slog.String("ip", s.clientIP(r, c)),
	)
	if !known {
		rec.AddAttrs(slog.String("method", method))
	}
	_ = h.Handle(ctx, rec) // a failing log sink must not fail the request
}

// quietRoutes are logged at debug when they succeed.
var quietRoutes = map[string]bool{routeAppCallback: true, routeContactsCallback: true, "/healthz": true, "/readyz": true, "/metrics": true}

// accessLogMessages are the access log messages of the usual methods, without concatenation.
var accessLogMessages = map[string]string{
	http.MethodGet: "http GET", http.MethodPost: "http POST", http.MethodHead: "http HEAD",
	http.MethodPut: "http PUT", http.MethodDelete: "http DELETE", http.MethodPatch: "http PATCH",
	http.MethodOptions: "http OPTIONS",
}

// clientIP is the client's address: gin's ClientIP when proxies are trusted (it reads
// X-Forwarded-For from them), else the peer address as is, which saves gin's parse and format.
// c is the request's gin context, or nil for a request served without gin.
func (s *Server) clientIP(r *http.Request, c *gin.Context) string {
	if len(s.cfg.TrustedProxies) > 0 {
		if c == nil {
			// A fresh context of the engine applies the engine's proxy rules; this is only
			// reached for a request that is logged, never on a successful callback at info.
			c = gin.CreateTestContextOnly(nil, s.engine)
			c.Request = r
		}
		return c.ClientIP()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// recovery turns a panic in a handler into a logged error (with the stack, never sent to the
// client) and a Chinese 500 page. It runs inside accessLog so that the 500 is logged and counted.
// http.ErrAbortHandler is re-raised: it is net/http's way to abort a response on purpose.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		rec := recover()
		if rec == nil {
			return
		}
		if rec == http.ErrAbortHandler {
			panic(rec)
		}
		s.logPanic(c.Request, RequestID(c.Request.Context()), rec)
		c.Abort()
		if c.Writer.Written() {
			return // too late for a page; the client sees a truncated response
		}
		s.renderError(c, http.StatusInternalServerError, "系统繁忙", "系统内部错误，请稍后再试。")
	}()
	c.Next()
}

// logPanic logs a recovered panic with its stack.
func (s *Server) logPanic(r *http.Request, id string, rec any) {
	s.log.ErrorContext(r.Context(), "panic serving request",
		"method", r.Method,
		"path", r.URL.Path,
		"request_id", id,
		"panic", fmt.Sprint(rec),
		"stack", string(debug.Stack()),
	)
}
