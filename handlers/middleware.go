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

// requestID takes a sane incoming X-Request-Id or makes one, echoes it in the response and puts
// it into the request context (RequestID reads it back).
func (s *Server) requestID(c *gin.Context) {
	id := c.Request.Header.Get(HeaderRequestID)
	if !saneRequestID(id) {
		id = s.ids.next()
	}
	c.Writer.Header()[HeaderRequestID] = []string{id}
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestIDKey{}, id))
	c.Next()
}

// accessLog writes one log line per request: "http GET" (the method is in the message), path
// (never the query string: OAuth codes and CAS tickets travel there), status, latency, request
// id and client IP, and counts the request in the HTTP metrics. It is on the callback's hot path,
// so it builds the record itself: no caller PC (runtime.Callers; the source would always be this
// line), no second clock read, and at most five attributes, which slog keeps without allocating.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	d := time.Since(start)
	status := c.Writer.Status()
	method := c.Request.Method
	s.metrics.observeRequest(c.FullPath(), method, status, d)

	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case status < 400 && quietRoutes[c.FullPath()]:
		// Successful callbacks and probes are counted in /metrics; logging each one at info
		// would drown the member flows (and cost ~1 µs on the callback's hot path).
		level = slog.LevelDebug
	}
	ctx := c.Request.Context()
	h := s.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	path := c.Request.URL.Path
	if len(path) > maxLoggedPath {
		path = path[:maxLoggedPath]
	}
	msg, known := accessLogMessages[method]
	if !known {
		msg = "http request"
	}
	r := slog.NewRecord(start.Add(d), level, msg, 0)
	r.AddAttrs(
		slog.String("path", path),
		slog.Int("status", status),
		slog.Duration("latency", d),
		slog.String("request_id", RequestID(ctx)),
		slog.String("ip", s.clientIP(c)),
	)
	if !known {
		r.AddAttrs(slog.String("method", method))
	}
	_ = h.Handle(ctx, r) // a failing log sink must not fail the request
}

// quietRoutes are logged at debug when they succeed.
var quietRoutes = map[string]bool{"/wecom/callback": true, "/wecom/contacts": true, "/healthz": true, "/readyz": true, "/metrics": true}

// accessLogMessages are the access log messages of the usual methods, without concatenation.
var accessLogMessages = map[string]string{
	http.MethodGet: "http GET", http.MethodPost: "http POST", http.MethodHead: "http HEAD",
	http.MethodPut: "http PUT", http.MethodDelete: "http DELETE", http.MethodPatch: "http PATCH",
	http.MethodOptions: "http OPTIONS",
}

// clientIP is the client's address: gin's ClientIP when proxies are trusted (it reads
// X-Forwarded-For from them), else the peer address as is, which saves gin's parse and format.
func (s *Server) clientIP(c *gin.Context) string {
	if len(s.cfg.TrustedProxies) > 0 {
		return c.ClientIP()
	}
	host, _, err := net.SplitHostPort(c.Request.RemoteAddr)
	if err != nil {
		return c.Request.RemoteAddr
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
		ctx := c.Request.Context()
		s.log.ErrorContext(ctx, "panic serving request",
			"method", c.Request.Method,
			"path", c.Request.URL.Path,
			"request_id", RequestID(ctx),
			"panic", fmt.Sprint(rec),
			"stack", string(debug.Stack()),
		)
		c.Abort()
		if c.Writer.Written() {
			return // too late for a page; the client sees a truncated response
		}
		s.renderError(c, http.StatusInternalServerError, "系统繁忙", "系统内部错误，请稍后再试。")
	}()
	c.Next()
}
