package handlers

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// DefaultRateLimitPerMinute is server.rate_limit.per_minute when Config.RateLimitPerMinute is 0.
// Hundreds of students share one campus NAT address at enrolment, so it is generous: it stops a
// flood of junk tickets and codes, not a class signing up.
const DefaultRateLimitPerMinute = 300

// rateLimitKeys bounds the clients the in-process limiter remembers (about 64 bytes each).
const rateLimitKeys = 1 << 16

// RateLimiter decides whether a client may make one more request that has the service call
// WeCom or CAS before any login (server.rate_limit, CONTRACT §6). key is the client's address
// (rateKey). A refusal says how long until the next request would be allowed.
//
// The default is in-process (NewLocalRateLimiter); a fleet of replicas plugs in a shared one
// (Redis) through Deps.RateLimiter. An error means the limiter cannot decide now: the request is
// then held to this replica's own in-process limit, never refused for the error.
type RateLimiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// LocalRateLimiter is the in-process RateLimiter: perMinute requests per key and minute, with a
// burst of perMinute, in bounded memory.
//
// It is GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp per key)
// rather than golang.org/x/time/rate: one int64 per key instead of a limiter struct, no extra
// module, and a key whose timestamp has passed is exactly a fresh key, so idle keys can be
// dropped at any time without changing a decision, which is what bounds the memory.
type LocalRateLimiter struct {
	interval  int64 // ns: a minute divided by perMinute, the sustained spacing of requests
	tolerance int64 // ns: how far a key's theoretical arrival time may run ahead of now (the burst)
	maxKeys   int
	now       func() time.Time

	mu        sync.Mutex
	tat       map[string]int64 // key -> theoretical arrival time (unix ns) of its next request
	lastSweep int64
}

// NewLocalRateLimiter returns an in-process limiter of perMinute requests per key (at least 1),
// remembering at most maxKeys keys (0: 65536). now is the clock; nil means time.Now.
func NewLocalRateLimiter(perMinute, maxKeys int, now func() time.Time) *LocalRateLimiter {
	perMinute = max(perMinute, 1)
	if maxKeys <= 0 {
		maxKeys = rateLimitKeys
	}
	if now == nil {
		now = time.Now
	}
	iv := int64(time.Minute) / int64(perMinute)
	return &LocalRateLimiter{interval: iv, tolerance: iv * int64(perMinute-1), maxKeys: maxKeys, now: now,
		tat: make(map[string]int64)}
}

// Allow counts one request of key if the key is within its limit; a refused request is not
// counted, so a client that keeps trying still gets the sustained rate.
func (l *LocalRateLimiter) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	now := l.now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	tat, known := l.tat[key]
	if tat < now {
		tat = now
	}
	if wait := tat - now - l.tolerance; wait > 0 {
		return false, time.Duration(wait), nil
	}
	if !known && len(l.tat) >= l.maxKeys {
		l.evict(now)
	}
	l.tat[key] = tat + l.interval
	return true, 0, nil
}

// evict makes room for one key: it drops every idle key (at most once a second: a sweep reads
// the whole map), and, if every key is busy, an arbitrary one, which then starts afresh.
func (l *LocalRateLimiter) evict(now int64) {
	if now-l.lastSweep >= int64(time.Second) {
		l.lastSweep = now
		for k, t := range l.tat {
			if t <= now {
				delete(l.tat, k)
			}
		}
	}
	if len(l.tat) < l.maxKeys {
		return
	}
	for k := range l.tat {
		delete(l.tat, k)
		return
	}
}

// rateKey is the limiter key of a client address: an IPv4 address as is, an IPv6 address by its
// /64, which one subscriber (or attacker) holds as a whole.
func rateKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// rateLimiter holds the configured limiter and the in-process one it falls back to.
type rateLimiter struct {
	shared  RateLimiter // Deps.RateLimiter; nil: local only
	local   *LocalRateLimiter
	lastErr atomic.Int64 // unix ns of the last logged limiter error
}

// limitOutbound limits, per client address, the requests that carry a CAS ticket or a WeCom code:
// each of them makes the service call CAS or WeCom before any login. Beyond the limit the request
// gets the 429 page with Retry-After and is not passed on, so no outbound call is made for it.
func (s *Server) limitOutbound(c *gin.Context) {
	if c.Query("ticket") == "" && c.Query("code") == "" {
		c.Next()
		return
	}
	ok, wait := s.allow(c.Request.Context(), rateKey(s.clientIP(c.Request, c)))
	if ok {
		c.Next()
		return
	}
	secs := int((wait + time.Second - 1) / time.Second)
	c.Header("Retry-After", strconv.Itoa(secs))
	s.renderMessage(c, http.StatusTooManyRequests, &pageView{Title: "访问过于频繁", Icon: "wait",
		Paragraphs: []string{"当前网络中的访问人数较多，请 " + strconv.Itoa(secs) + " 秒后刷新本页重试。",
			"如果在校园网内，同一网络的其他同学也在办理，稍等片刻即可。"}})
	c.Abort()
}

// allow asks the limiter; when the shared one fails, this replica's own limit decides (logged at
// most once a minute).
func (s *Server) allow(ctx context.Context, key string) (bool, time.Duration) {
	rl := s.limiter
	if rl.shared != nil {
		ok, wait, err := rl.shared.Allow(ctx, key)
		if err == nil {
			return ok, wait
		}
		now := time.Now().UnixNano()
		if last := rl.lastErr.Load(); now-last >= int64(time.Minute) && rl.lastErr.CompareAndSwap(last, now) {
			s.log.Warn("rate limiter unavailable; this replica's own limit applies", "err", err, "request_id", RequestID(ctx))
		}
	}
	ok, wait, _ := rl.local.Allow(ctx, key) // the local limiter never fails
	return ok, wait
}
