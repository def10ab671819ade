package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/cas"
	"github.com/wecampus/wecampus/handlers"
	"github.com/wecampus/wecampus/internal/keys"
	"github.com/wecampus/wecampus/redis"
	"github.com/wecampus/wecampus/sms"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/wecom"
	"github.com/wecampus/wecampus/wecom/callback"
)

// maxBodyBytes bounds a callback body.
const maxBodyBytes = 1 << 20

// deps is what a command runs on: the service and the ports build was asked for. Every command
// gets its service from build, with the options for what it needs.
type deps struct {
	cfg *Config
	log *slog.Logger
	svc *app.Service // its ports are the parts built; the others are nil

	db      *store.DB            // withStore, withMigrate, withServing
	wecom   *wecom.Client        // withWeCom, withServing
	redis   *redis.Client        // withWeCom, withServing, when redis.addr is set: the fleet's shared state
	handler http.Handler         // withServing: the HTTP service of serve and demo
	reg     *prometheus.Registry // withServing: what /metrics gathers
}

// buildOptions says what build builds.
type buildOptions struct {
	store   bool    // open the database
	migrate bool    // and create or upgrade its schema
	wecom   bool    // the WeCom API client
	serving bool    // everything serve runs (implies the three above)
	sms     app.SMS // replaces the configured SMS provider
}

// buildOption is an option of build.
type buildOption func(*buildOptions)

// withStore opens the database, without migrating it (the CLI commands that read and write
// bindings).
func withStore() buildOption { return func(o *buildOptions) { o.store = true } }

// withMigrate opens the database and creates or upgrades its schema.
func withMigrate() buildOption { return func(o *buildOptions) { o.store, o.migrate = true, true } }

// withWeCom builds the WeCom API client.
func withWeCom() buildOption { return func(o *buildOptions) { o.wecom = true } }

// withServing builds everything serve runs: the migrated database, WeCom, CAS, SMS, the identity
// policy, the callback codecs and the HTTP handler. Bind intents an earlier run left open are
// repaired on the way.
func withServing() buildOption {
	return func(o *buildOptions) { o.store, o.migrate, o.wecom, o.serving = true, true, true, true }
}

// withSMS replaces the configured SMS provider: the demo records the codes it sends.
func withSMS(s app.SMS) buildOption { return func(o *buildOptions) { o.sms = s } }

// build wires the service for cfg, validated, with the parts opts ask for. The caller closes
// the result.
func build(ctx context.Context, cfg *Config, log *slog.Logger, opts ...buildOption) (_ *deps, err error) {
	var o buildOptions
	for _, opt := range opts {
		opt(&o)
	}
	d := &deps{cfg: cfg, log: log, svc: &app.Service{
		BaseURL:     cfg.Server.BaseURL,
		HelpKey:     cfg.WeCom.HelpKey,
		HelpContact: cfg.Server.HelpContact,
		Now:         time.Now,
		Log:         log,
		SMSPolicy: app.SMSPolicy{
			TTL:              cfg.SMS.CodeTTL,
			Cooldown:         cfg.SMS.Cooldown,
			DailyLimit:       cfg.SMS.DailyLimit,
			MaxAttempts:      cfg.SMS.MaxAttempts,
			IPLimit:          cfg.SMS.IPLimit,
			IPWindow:         cfg.SMS.IPWindow,
			RebindDailyLimit: cfg.SMS.MigrateDailyLimit,
			Secret:           keys.Derive(cfg.Server.SessionSecret.Reveal(), keys.SMSCode),
		},
		Retention: app.RetentionPolicy{UnboundAfter: cfg.Retention.UnboundAfter, SMSAfter: cfg.Retention.SMSAfter},
		Admins:    app.AdminPolicy{Operators: cfg.Admin.Operators, Viewers: cfg.Admin.Viewers},
	}}
	if cfg.Identity.PersonAttribute != "" {
		d.svc.PersonIDKey = keys.Derive(cfg.Server.SessionSecret.Reveal(), keys.PersonID)
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	var reg *prometheus.Registry // of /metrics: only a serving process has one
	var registerer prometheus.Registerer
	if o.serving {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		registerer, d.reg = reg, reg
	}
	if o.store {
		if d.db, err = openStore(ctx, cfg, log, o.migrate); err != nil {
			return nil, err
		}
		d.svc.Store = d.db
	}
	if o.wecom {
		var fleet []wecom.Option
		if cfg.Redis.Addr != "" {
			// Redis shares the access tokens and the 2FA cap with the other replicas (and with
			// the CLI commands that call WeCom). Down at start is not an error: degraded.
			if d.redis, err = redis.Open(ctx, redisConfig(cfg), log, registerer); err != nil {
				return nil, err
			}
			fleet = []wecom.Option{wecom.WithTokenStore(d.redis), wecom.WithSemaphore(d.redis)}
		}
		if d.wecom, err = newWeComClient(cfg, registerer, log, fleet...); err != nil {
			return nil, err
		}
		d.svc.WeCom = d.wecom
	}
	if o.serving {
		if err := d.buildServing(ctx, reg, o.sms); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// buildServing adds to the service what serving members needs, repairs the bind intents an
// earlier run left open, and builds the HTTP handler.
func (d *deps) buildServing(ctx context.Context, reg *prometheus.Registry, sender app.SMS) error {
	cfg, svc := d.cfg, d.svc
	var err error
	if svc.Identity, err = cfg.IdentityPolicy(); err != nil {
		return err
	}
	if svc.CAS, err = newCASClient(cfg, d.log); err != nil {
		return err
	}
	if sender == nil {
		if sender, err = newSMS(cfg, d.log); err != nil {
			return err
		}
	}
	svc.SMS = sender
	var redisUp func() bool
	var rateLimiter handlers.RateLimiter // nil: in-process
	if d.redis != nil {
		svc.Limits = d.redis
		redisUp = d.redis.Up
		rateLimiter = d.redis.RateLimiter(cfg.Server.RateLimit.PerMinute)
	}
	svc.VerifyMode = app.VerifyMode(cfg.WeCom.VerifyMode)
	svc.JoinQRCodeURL = cfg.WeCom.JoinQRCodeURL

	if n, err := svc.RepairIntents(ctx); err != nil {
		d.log.Error("repair open bind intents", "err", err)
	} else if n > 0 {
		d.log.Warn("repaired bind intents left open by an earlier run", "count", n)
	}

	appCodec, contactsCodec, err := newCodecs(cfg.WeCom)
	if err != nil {
		return err
	}
	d.handler, err = handlers.New(handlers.Config{
		BaseURL:        cfg.Server.BaseURL,
		SessionSecret:  cfg.Server.SessionSecret.Reveal(),
		TrustedProxies: cfg.Server.TrustedProxies,
		MaxBodyBytes:   maxBodyBytes,
		HelpContact:    cfg.Server.HelpContact,

		SeparateMetrics:    cfg.Server.MetricsAddr != "",
		RateLimitPerMinute: cfg.Server.RateLimit.PerMinute,
	}, handlers.Deps{
		Service:       svc,
		AppCodec:      appCodec,
		ContactsCodec: contactsCodec,
		Ready:         d.db.Ping,
		RedisUp:       redisUp,
		Registry:      reg,
		Log:           d.log,
		AuthURL:       d.wecom.AuthURL,
		RateLimiter:   rateLimiter,
		WebLoginURL:   d.wecom.WebLoginURL,
	})
	return err
}

// close releases what build opened; it may be called more than once.
func (d *deps) close() error {
	if d.redis != nil {
		_ = d.redis.Close() // nothing to lose: Redis keeps what was written
		d.redis = nil
	}
	if d.db == nil {
		return nil
	}
	err := d.db.Close()
	d.db = nil
	if err != nil {
		d.log.Error("close database", "err", err)
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// The constructors of the ports below are also what config validation runs: their errors name
// the config keys they are about (see config_validate.go).

func storeConfig(cfg *Config) store.Config {
	return store.Config{Driver: cfg.Database.Driver, DSN: cfg.Database.DSN.Reveal()}
}

// openStore opens the database and, with migrate, creates or upgrades its schema.
func openStore(ctx context.Context, cfg *Config, log *slog.Logger, migrate bool) (*store.DB, error) {
	db, err := store.Open(ctx, storeConfig(cfg), time.Now, log)
	if err != nil {
		return nil, err
	}
	if migrate {
		if err := db.Migrate(ctx); err != nil {
			_ = db.Close() // the migration error is the one worth reporting
			return nil, err
		}
	}
	return db, nil
}

// redisConfig is the redis adapter's view of redis:.
func redisConfig(cfg *Config) redis.Config {
	return redis.Config{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password.Reveal(), DB: cfg.Redis.DB, KeyPrefix: cfg.Redis.KeyPrefix}
}

// newWeComClient builds the WeCom API client with the options given; reg and log may be nil.
func newWeComClient(cfg *Config, reg prometheus.Registerer, log *slog.Logger, opts ...wecom.Option) (*wecom.Client, error) {
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
		LoginBase:      cfg.WeCom.LoginBase,
		Timeout:        cfg.WeCom.Timeout,
	}, log, opts...)
}

// newCASClient builds the CAS client; log may be nil.
func newCASClient(cfg *Config, log *slog.Logger) (*cas.Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return cas.New(cas.Config{
		BaseURL:    cfg.CAS.BaseURL,
		Protocol:   cfg.CAS.Protocol,
		NameAttr:   cfg.CAS.Attributes.Name,
		TypeAttr:   cfg.CAS.Attributes.Type,
		PersonAttr: cfg.Identity.PersonAttribute,
		Timeout:    cfg.CAS.Timeout,
	}, &http.Client{Timeout: cfg.CAS.Timeout}, log)
}

// newCodecs returns the app callback codec and, when its keys are set, the 通讯录同步 one. Each
// error names the AES key of its codec.
func newCodecs(w WeComConfig) (appCodec, contactsCodec *callback.Codec, err error) {
	appCodec, err = callback.New(w.CorpID, w.CallbackToken.Reveal(), w.CallbackAESKey.Reveal(), callback.WithMaxAge(w.CallbackMaxAge))
	if err != nil {
		err = fmt.Errorf("wecom.callback_aes_key: %w", err)
	}
	if w.HasContactsCallback() {
		var cerr error
		contactsCodec, cerr = callback.New(w.CorpID, w.ContactsCallbackToken.Reveal(), w.ContactsCallbackAESKey.Reveal(), callback.WithMaxAge(w.CallbackMaxAge))
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("wecom.contacts_callback_aes_key: %w", cerr))
		}
	}
	if err != nil {
		return nil, nil, err
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
	return nil, fmt.Errorf("sms.provider: must be log, http or tencentcloud (got %q)", cfg.SMS.Provider)
}
