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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/cas"
	"github.com/wecampus/wecampus/handlers"
	"github.com/wecampus/wecampus/internal/keys"
	"github.com/wecampus/wecampus/sms"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/wecom"
	"github.com/wecampus/wecampus/wecom/callback"
)

// HTTP server limits. Pages and callbacks are small and WeCom gives up after 5 s, so generous
// but finite timeouts only guard against slow clients holding connections.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxBodyBytes      = 1 << 20
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
			log := c.logger(cfg)
			db, err := openAndMigrate(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			if err := db.Close(); err != nil {
				return fmt.Errorf("close database: %w", err)
			}
			_, err = fmt.Fprintln(c.stdout, "ok   database schema is up to date")
			return err
		},
	}
}

func openAndMigrate(ctx context.Context, cfg *Config, log *slog.Logger) (*store.DB, error) {
	db, err := store.Open(ctx, storeConfig(cfg), time.Now, log)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		_ = db.Close() // the migration error is the one worth reporting
		return nil, err
	}
	return db, nil
}

// serve runs the service until ctx ends or SIGINT/SIGTERM arrives, then stops accepting
// connections, lets in-flight requests finish (up to server.shutdown_timeout), stops the outbox
// worker and closes the database.
func (c *cli) serve(ctx context.Context, cfg *Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	sv, err := assemble(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer sv.close(log)
	h := sv.handler
	if c.wrapHandler != nil {
		h = c.wrapHandler(h)
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("server.addr: %w", err)
	}
	return c.serveOn(ctx, cfg, log, ln, h, sv.svc, false)
}

// serving is the assembled service that serve and demo run.
type serving struct {
	db            *store.DB
	svc           *app.Service
	appCodec      *callback.Codec
	contactsCodec *callback.Codec // nil when the 通讯录同步 event server is not configured
	handler       http.Handler
}

// assemble opens and migrates the database, builds the service, repairs bind intents an earlier
// run left open and builds the HTTP handler. The caller closes it.
func assemble(ctx context.Context, cfg *Config, log *slog.Logger) (*serving, error) {
	db, err := openAndMigrate(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	sv := &serving{db: db}
	if err := sv.build(ctx, cfg, log); err != nil {
		sv.close(log)
		return nil, err
	}
	return sv, nil
}

func (sv *serving) build(ctx context.Context, cfg *Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	wc, err := newWeComClient(cfg, reg, log)
	if err != nil {
		return err
	}
	if sv.svc, err = buildService(cfg, sv.db, wc, log); err != nil {
		return err
	}
	if n, err := sv.svc.RepairIntents(ctx); err != nil {
		log.Error("repair open bind intents", "err", err)
	} else if n > 0 {
		log.Warn("repaired bind intents left open by an earlier run", "count", n)
	}
	if sv.appCodec, sv.contactsCodec, err = buildCodecs(cfg); err != nil {
		return err
	}
	sv.handler, err = handlers.New(handlers.Config{
		BaseURL:        cfg.Server.BaseURL,
		SessionSecret:  cfg.Server.SessionSecret.Reveal(),
		TrustedProxies: cfg.Server.TrustedProxies,
		MaxBodyBytes:   maxBodyBytes,
		HelpContact:    cfg.Server.HelpContact,
	}, handlers.Deps{
		Service:       sv.svc,
		AppCodec:      sv.appCodec,
		ContactsCodec: sv.contactsCodec,
		Ready:         sv.db.Ping,
		Registry:      reg,
		Log:           log,
		AuthURL:       wc.AuthURL,
	})
	return err
}

func (sv *serving) close(log *slog.Logger) {
	if err := sv.db.Close(); err != nil {
		log.Error("close database", "err", err)
	}
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

// buildService wires the use cases to WeCom, CAS, SMS and the store.
func buildService(cfg *Config, db app.Store, wc app.WeCom, log *slog.Logger) (*app.Service, error) {
	policy, err := cfg.IdentityPolicy()
	if err != nil {
		return nil, err
	}
	casClient, err := newCASClient(cfg, log)
	if err != nil {
		return nil, err
	}
	sender, err := newSMS(cfg, log)
	if err != nil {
		return nil, err
	}
	return &app.Service{
		Store:    db,
		WeCom:    wc,
		SMS:      sender,
		CAS:      casClient,
		Identity: policy,
		SMSPolicy: app.SMSPolicy{
			TTL:         cfg.SMS.CodeTTL,
			Cooldown:    cfg.SMS.Cooldown,
			DailyLimit:  cfg.SMS.DailyLimit,
			MaxAttempts: cfg.SMS.MaxAttempts,
			IPLimit:     cfg.SMS.IPLimit,
			IPWindow:    cfg.SMS.IPWindow,
			Secret:      keys.Derive(cfg.Server.SessionSecret.Reveal(), keys.SMSCode),
		},
		VerifyMode:    app.VerifyMode(cfg.WeCom.VerifyMode),
		JoinQRCodeURL: cfg.WeCom.JoinQRCodeURL,
		BaseURL:       cfg.Server.BaseURL,
		HelpKey:       cfg.WeCom.HelpKey,
		Now:           time.Now,
		Log:           log,
	}, nil
}

func newWeComClient(cfg *Config, reg prometheus.Registerer, log *slog.Logger) (*wecom.Client, error) {
	var opts []wecom.Option
	if reg != nil {
		opts = append(opts, wecom.WithRegisterer(reg))
	}
	return wecom.New(wecom.Config{
		CorpID:         cfg.WeCom.CorpID,
		AppSecret:      cfg.WeCom.AppSecret.Reveal(),
		ContactsSecret: cfg.WeCom.ContactsSecret.Reveal(),
		AgentID:        cfg.WeCom.AgentID,
		APIBase:        cfg.WeCom.APIBase,
		OAuthBase:      cfg.WeCom.OAuthBase,
		Timeout:        cfg.WeCom.Timeout,
	}, log, opts...)
}

func newCASClient(cfg *Config, log *slog.Logger) (*cas.Client, error) {
	return cas.New(cas.Config{
		BaseURL:  cfg.CAS.BaseURL,
		Protocol: cfg.CAS.Protocol,
		NameAttr: cfg.CAS.Attributes.Name,
		TypeAttr: cfg.CAS.Attributes.Type,
		Timeout:  cfg.CAS.Timeout,
	}, &http.Client{Timeout: cfg.CAS.Timeout}, log)
}

// buildCodecs returns the app callback codec and, when its keys are set, the 通讯录同步 one.
func buildCodecs(cfg *Config) (appCodec, contactsCodec *callback.Codec, err error) {
	w := cfg.WeCom
	appCodec, err = callback.New(w.CorpID, w.CallbackToken.Reveal(), w.CallbackAESKey.Reveal(), callback.WithMaxAge(w.CallbackMaxAge))
	if err != nil {
		return nil, nil, fmt.Errorf("wecom.callback_aes_key: %w", err)
	}
	if w.HasContactsCallback() {
		contactsCodec, err = callback.New(w.CorpID, w.ContactsCallbackToken.Reveal(), w.ContactsCallbackAESKey.Reveal(), callback.WithMaxAge(w.CallbackMaxAge))
		if err != nil {
			return nil, nil, fmt.Errorf("wecom.contacts_callback_aes_key: %w", err)
		}
	}
	return appCodec, contactsCodec, nil
}

// newSMS builds the configured SMS provider (sms.provider).
func newSMS(cfg *Config, log *slog.Logger) (app.SMS, error) {
	switch cfg.SMS.Provider {
	case "log":
		return sms.NewLog(log), nil
	case "http":
		return sms.NewHTTP(cfg.SMS.HTTP.URL, cfg.SMS.HTTP.Token.Reveal(), &http.Client{Timeout: 10 * time.Second})
	case "tencentcloud":
		t := cfg.SMS.TencentCloud
		return sms.NewTencentCloud(sms.TencentConfig{
			SecretID:   t.SecretID.Reveal(),
			SecretKey:  t.SecretKey.Reveal(),
			Region:     t.Region,
			SDKAppID:   t.SDKAppID,
			SignName:   t.SignName,
			TemplateID: t.TemplateID,
			Endpoint:   t.Endpoint,
			Minutes:    max(1, int(cfg.SMS.CodeTTL/time.Minute)),
		})
	}
	return nil, fmt.Errorf("config: sms.provider: unknown provider %q", cfg.SMS.Provider)
}
