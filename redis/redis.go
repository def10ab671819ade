// Package redis is wecampus's adapter to Redis (redis.*, CONTRACT §8): the only package that
// imports go-redis. It lets several replicas act as one service:
//
//   - Token and DropToken keep one WeCom access token per secret for the whole fleet (it
//     implements wecom.TokenStore);
//   - Allow and Undo hold the SMS limits fleet-wide and atomically (app.Limiter);
//   - RateLimiter holds server.rate_limit per client address fleet-wide (handlers.RateLimiter);
//   - Acquire caps concurrent calls fleet-wide, for WeCom's 2FA APIs (wecom.Semaphore).
//
// Redis is optional and never a single point of failure. A health monitor pings it twice a second
// and publishes the gauge wecampus_redis_up; while it is down (Up reports false) every feature
// degrades instead of failing: Token fetches from WeCom directly (the wecom package keeps the
// token in its process-local cache, so never a gettoken per request), Allow reports
// ErrUnavailable (callers fall back to the limits the database enforces), and Acquire uses an
// in-process semaphore. When Redis answers again the monitor flips back, without a restart.
//
// The limits are our own Lua scripts, not a library such as redis_rate. The SMS limits are "at
// most N events in the last window" (an SMS per 60 s, 10 per 24 h, 200 per hour per IP), the
// same count the database takes as the floor, so the script keeps a sliding log (a sorted set)
// and both agree on what is allowed; and one script checks several limits at once and counts the
// event in all of them or in none, which a one-key-per-call limiter cannot do: a send refused by
// the per-IP cap would already have used up the mobile's cooldown. The request rate limit is
// GCRA, one number per client address, the algorithm of the replicas' in-process fallback, so
// the two decide alike; that is what redis_rate implements too, in a script of the same size and
// a dependency more. Time comes from the Redis server (TIME), so replicas with skewed clocks
// agree. The scripts need Redis 5 or newer (effect replication) and a single Redis, not a
// cluster: the keys of one call share no slot.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultKeyPrefix is the prefix of every key when Config.KeyPrefix is empty.
const DefaultKeyPrefix = "wecampus:"

// Timings. Redis sits next to the replicas: an answer takes well under a millisecond, so a
// second without one means it is gone, and a request must not wait longer than that for it.
const (
	healthEvery  = 500 * time.Millisecond // health ping period, also the recovery delay after an outage
	pingTimeout  = time.Second
	dialTimeout  = time.Second
	ioTimeout    = time.Second // read and write timeout of one command
	closeTimeout = time.Second // releasing a lock or lease when the caller's ctx is gone
)

// ErrUnavailable is returned while Redis is down (Up is false) by the calls that have no
// fallback of their own.
var ErrUnavailable = errors.New("redis: unavailable")

// Config is the redis: section.
type Config struct {
	Addr      string // host:port
	Password  string // secret
	DB        int
	KeyPrefix string // prepended to every key; default DefaultKeyPrefix
}

// Validate reports what is wrong with cfg, one line per problem, each naming its config key. An
// empty Addr is valid: Redis is not used.
func (cfg Config) Validate() error {
	var errs []error
	if cfg.Addr != "" {
		if host, port, err := net.SplitHostPort(cfg.Addr); err != nil || host == "" || port == "" {
			errs = append(errs, fmt.Errorf("redis.addr: must be host:port, e.g. 127.0.0.1:6379 (got %q)", cfg.Addr))
		}
	}
	if cfg.DB < 0 {
		errs = append(errs, fmt.Errorf("redis.db: must not be negative (got %d)", cfg.DB))
	}
	if strings.ContainsAny(cfg.KeyPrefix, " \t\r\n*?[]") {
		errs = append(errs, fmt.Errorf("redis.key_prefix: must not contain spaces or glob characters (got %q)", cfg.KeyPrefix))
	}
	return errors.Join(errs...)
}

// Client is a Redis connection pool with a health monitor. It is safe for concurrent use.
type Client struct {
	rdb    *goredis.Client
	prefix string
	log    *slog.Logger

	up    atomic.Bool
	gauge prometheus.Gauge

	stop context.CancelFunc
	done chan struct{}

	semMu sync.Mutex
	sems  map[string]chan struct{} // in-process fallback semaphores, by key
}

// Open connects to Redis and starts the health monitor. It registers the gauge
// wecampus_redis_up with reg (if not nil). A Redis that does not answer yet is not an error: the
// Client starts degraded and recovers when Redis comes up (also one still loading its data). A
// refused password or database is an error: a configuration mistake. log may be nil.
func Open(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("redis.addr: required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	setLoggerOnce.Do(func() { goredis.SetLogger(debugLogger{}) })

	c := &Client{
		rdb:    goredis.NewClient(options(cfg)),
		prefix: cfg.KeyPrefix,
		log:    log,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wecampus_redis_up",
			Help: "1 when Redis answers, 0 while it is unreachable and the replica runs degraded.",
		}),
		done: make(chan struct{}),
		sems: map[string]chan struct{}{},
	}
	if reg != nil {
		if err := reg.Register(c.gauge); err != nil {
			_ = c.rdb.Close()
			return nil, fmt.Errorf("redis: metrics: %w", err)
		}
	}
	err := c.ping(ctx)
	if isReply(err) && !transientReply(err) {
		_ = c.rdb.Close()
		return nil, fmt.Errorf("redis.addr: %s refused us (check redis.password and redis.db): %w", cfg.Addr, err)
	}
	if err != nil {
		log.Warn("redis: unreachable at start; serving degraded until it answers", "addr", cfg.Addr, "err", err)
	}
	c.setUp(err == nil, err)

	mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	c.stop = stop
	go c.monitor(mctx)
	return c, nil
}

// options maps cfg to go-redis options: short timeouts, because a replica must fall back to its
// degraded mode quickly rather than hang on a dead Redis, and no retries of commands (a counting
// script must not run twice; a failed command is answered by the fallback at once).
func options(cfg Config) *goredis.Options {
	return &goredis.Options{
		Addr:                  cfg.Addr,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		DialTimeout:           dialTimeout,
		DialerRetries:         1,
		ReadTimeout:           ioTimeout,
		WriteTimeout:          ioTimeout,
		ContextTimeoutEnabled: true,
		PoolTimeout:           ioTimeout,
		MaxRetries:            -1,
		DisableIdentity:       true, // no CLIENT SETINFO: older servers log it as an error
		MaintNotificationsConfig: &maintnotifications.Config{ // a Redis Cloud feature; plain Redis has no use for it
			Mode: maintnotifications.ModeDisabled,
		},
	}
}

// Close stops the monitor and closes the connections.
func (c *Client) Close() error {
	c.stop()
	<-c.done
	c.up.Store(false)
	c.gauge.Set(0)
	return c.rdb.Close()
}

// Up reports whether Redis answered the last command or health ping.
func (c *Client) Up() bool { return c.up.Load() }

// Ping checks that Redis answers now.
func (c *Client) Ping(ctx context.Context) error {
	err := c.ping(ctx)
	c.observe(ctx, err)
	return err
}

func (c *Client) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	return c.rdb.Ping(ctx).Err()
}

// monitor pings Redis every healthEvery and flips Up; the only way back up after an outage.
func (c *Client) monitor(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.ping(ctx)
		if ctx.Err() != nil {
			return
		}
		c.setUp(err == nil, err)
	}
}

// setUp records the health and logs a change.
func (c *Client) setUp(up bool, err error) {
	if up {
		c.gauge.Set(1)
	} else {
		c.gauge.Set(0)
	}
	if c.up.Swap(up) == up {
		return
	}
	if up {
		c.log.Info("redis: reachable; fleet-wide tokens, limits and caps in use")
	} else {
		c.log.Warn("redis: unreachable; degraded to process-local tokens and caps and database limits", "err", err)
	}
}

// observe marks Redis down after a failed command that says it is unreachable or cannot serve.
// A command cut short by its caller's ctx says nothing about Redis.
func (c *Client) observe(ctx context.Context, err error) {
	if err == nil || errors.Is(err, goredis.Nil) || ctx.Err() != nil {
		return
	}
	if isReply(err) && !unavailableReply(err) {
		return // Redis answered: a wrong command is ours, not an outage
	}
	c.setUp(false, err)
}

// isReply reports whether err is an error reply from the Redis server (it answered).
func isReply(err error) bool {
	var re goredis.Error
	return err != nil && errors.As(err, &re) && !errors.Is(err, goredis.ErrClosed) && !isNet(err)
}

func isNet(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// unavailableReply reports error replies that mean this Redis cannot serve us at the moment:
// passing states, or credentials it no longer accepts.
func unavailableReply(err error) bool {
	return transientReply(err) || replyPrefix(err, "NOAUTH", "WRONGPASS")
}

// transientReply reports error replies of a Redis that will serve again by itself.
func transientReply(err error) bool {
	return replyPrefix(err, "LOADING", "READONLY", "MASTERDOWN", "OOM", "BUSY", "CLUSTERDOWN", "TRYAGAIN")
}

func replyPrefix(err error, prefixes ...string) bool {
	msg := err.Error()
	for _, p := range prefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// key is the Redis key for parts, under the configured prefix.
func (c *Client) key(parts ...string) string { return c.prefix + strings.Join(parts, ":") }

// DeleteKeys deletes every key under the Client's prefix (tests, or an operator retiring a
// deployment that shares its Redis) and returns how many it deleted.
func (c *Client) DeleteKeys(ctx context.Context) (int, error) {
	if c.prefix == "" {
		return 0, errors.New("redis: refusing to delete keys without a prefix")
	}
	var n int
	iter := c.rdb.Scan(ctx, 0, globEscape(c.prefix)+"*", 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		d, err := c.rdb.Unlink(ctx, batch...).Result()
		n += int(d)
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 500 {
			if err := flush(); err != nil {
				return n, fmt.Errorf("redis: delete keys: %w", err)
			}
		}
	}
	if err := errors.Join(iter.Err(), flush()); err != nil {
		return n, fmt.Errorf("redis: delete keys: %w", err)
	}
	return n, nil
}

// globEscape escapes the glob characters of SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^-`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// newID returns a random id: a lock owner, a counted event, a lease.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setLoggerOnce guards go-redis's logger, a process global: it is set once, to a logger that
// writes through slog.Default at debug level (the monitor reports outages itself).
var setLoggerOnce sync.Once

type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
