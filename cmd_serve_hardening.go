package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecampus/wecampus/handlers"
)

// metricsShutdownTimeout bounds the stop of the metrics listener; a scrape is quick.
const metricsShutdownTimeout = 2 * time.Second

// warnPlainBaseURL logs, once at the start of serve, that an http base_url costs the member
// cookies their protections.
func warnPlainBaseURL(cfg *Config, log *slog.Logger) {
	if strings.HasPrefix(strings.ToLower(cfg.Server.BaseURL), "https://") {
		return
	}
	log.Warn("server.base_url is not https: cookies lose Secure and the __Host- prefix, and no HSTS is sent; use an https base_url in production",
		"base_url", cfg.Server.BaseURL)
}

// startMetrics serves GET /metrics of reg, and nothing else, on server.metrics_addr (CONTRACT
// §6); the service's own listener then answers 404 for /metrics. It returns the function that
// stops the listener.
func (c *cli) startMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server.metrics_addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", handlers.MetricsHandler(reg))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	if c.onMetricsListen != nil {
		c.onMetricsListen(ln.Addr())
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close() // a scrape still running is cut
		}
		<-done
	}, nil
}
