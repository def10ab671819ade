package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/wecampus/wecampus/app"
)

// HTTP server limits. Pages and callbacks are small and WeCom gives up after 5 s, so generous
// but finite timeouts only guard against slow clients holding connections.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	outboxTick        = 5 * time.Second
)

func (c *cli) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "run the HTTP service until SIGINT/SIGTERM, then drain in-flight requests",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			if err := cfg.CheckServe(); err != nil {
				return err
			}
			return c.serve(cmd.Context(), cfg, c.logger(cfg))
		},
	}
}

func (c *cli) migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "create or upgrade the database schema and exit",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			d, err := build(cmd.Context(), cfg, c.logger(cfg), withMigrate())
			if err != nil {
				return err
			}
			if err := d.close(); err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.stdout, "ok   database schema is up to date")
			return err
		},
	}
}

// serve runs the service until ctx ends or SIGINT/SIGTERM arrives, then stops accepting
// connections, lets in-flight requests finish (up to server.shutdown_timeout), stops the outbox
// worker and closes the database.
func (c *cli) serve(ctx context.Context, cfg *Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	warnPlainBaseURL(cfg, log)
	d, err := build(ctx, cfg, log, withServing())
	if err != nil {
		return err
	}
	defer d.close()
	if cfg.Server.MetricsAddr != "" {
		stopMetrics, err := c.startMetrics(cfg.Server.MetricsAddr, d.reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	h := d.handler
	if c.wrapHandler != nil {
		h = c.wrapHandler(h)
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("server.addr: %w", err)
	}
	return c.serveOn(ctx, cfg, log, ln, h, d.svc, false)
}

// serveOn serves h on ln, with the outbox worker of svc, until ctx ends; then it stops accepting
// connections and lets in-flight requests finish (up to server.shutdown_timeout). Connections
// still open then are cut; with cutIsClean (the demo) that still counts as a clean stop, else it
// is an error.
func (c *cli) serveOn(ctx context.Context, cfg *Config, log *slog.Logger, ln net.Listener, h http.Handler, svc *app.Service, cutIsClean bool) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	// The outbox outlives the listener so that messages queued by draining requests still go.
	outboxCtx, stopOutbox := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { svc.RunBackground(outboxCtx, outboxTick) })
	defer func() {
		stopOutbox()
		wg.Wait()
	}()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("wecampus listening", "addr", ln.Addr().String(), "base_url", cfg.Server.BaseURL, "version", version)
	if c.onListen != nil {
		c.onListen(ln.Addr())
	}

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests", "timeout", cfg.Server.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close() // cut what did not finish in time; the shutdown error is the one to report
		if !cutIsClean {
			return fmt.Errorf("shutdown: %w", err)
		}
		log.Warn("connections still open after the shutdown timeout were closed", "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("stopped")
	return nil
}
