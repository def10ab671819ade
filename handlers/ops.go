package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout bounds the readiness probe so that a hung database answers 503, not a timeout.
const readyTimeout = 2 * time.Second

var mimeText = []string{"text/plain; charset=utf-8"}

// handleHealthz handles "GET /healthz": the process is up.
func (s *Server) handleHealthz(c *gin.Context) {
	writeText(c, http.StatusOK, "ok")
}

// handleReadyz handles "GET /readyz": 200 when the database answers, else 503. Redis is
// optional: while it is down the replica serves degraded, still ready, and the body says
// "redis: degraded" (CONTRACT §8).
func (s *Server) handleReadyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready", "err", err, "request_id", RequestID(ctx))
		writeText(c, http.StatusServiceUnavailable, "not ready")
		return
	}
	switch {
	case s.redisUp == nil:
		writeText(c, http.StatusOK, "ok")
	case s.redisUp():
		writeText(c, http.StatusOK, "ok\nredis: ok")
	default:
		writeText(c, http.StatusOK, "ok\nredis: degraded")
	}
}

// handleMetrics handles "GET /metrics": the Prometheus text format of the registry.
func (s *Server) handleMetrics() gin.HandlerFunc { return gin.WrapH(MetricsHandler(s.registry)) }

// MetricsHandler serves the Prometheus text format of reg: /metrics of the service, or of the
// listener of server.metrics_addr (Config.SeparateMetrics).
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, // a failing collector must not hide the others
	})
}

func writeText(c *gin.Context, status int, body string) {
	c.Writer.Header()["Content-Type"] = mimeText
	c.Writer.WriteHeader(status)
	_, _ = c.Writer.WriteString(body) // a write error means the client has gone
}
