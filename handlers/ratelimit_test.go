package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/handlers"
)

// withTrustedProxies sets server.trusted_proxies.
func withTrustedProxies(p ...string) envOption { return func(c *envConfig) { c.trustedProxies = p } }

// withRateLimit sets server.rate_limit.per_minute.
func withRateLimit(n int) envOption { return func(c *envConfig) { c.rateLimit = n } }

// withRateLimiter plugs in l as Deps.RateLimiter.
func withRateLimiter(l handlers.RateLimiter) envOption {
	return func(c *envConfig) { c.rateLimiter = l }
}

// from makes m send its requests through a proxy that appends xff to X-Forwarded-For.
func (m *member) from(xff string) *member {
	m.header = http.Header{"X-Forwarded-For": {xff}}
	return m
}

// outboundCalls counts the calls made to CAS and WeCom (but gettoken).
func (e *env) outboundCalls() int { return e.cas.Validations() + e.callsExceptToken() }

// limitedTargets are requests of the four rate-limited routes that would each make the service
// call CAS or WeCom if they were let through: a valid ticket, a valid join-verification code and
// OAuth returns with valid codes.
func limitedTargets(e *env, userID string) []string {
	return []string{
		"/bind/cas?ticket=" + url.QueryEscape(e.cas.IssueTicket("2022000001", e.baseURL+"/bind/cas")),
		"/verify?code=" + e.sim.IssueTfaCode(userID),
		"/unbind?code=" + e.sim.IssueOAuthCode(userID) + "&state=s",
		"/me?code=" + e.sim.IssueOAuthCode(userID) + "&state=s",
	}
}

// mustBeLimited checks a 429 answer: the Chinese page and Retry-After.
func mustBeLimited(t *testing.T, what string, r response) {
	t.Helper()
	mustStatus(t, what, r, http.StatusTooManyRequests)
	mustContain(t, what, r.page(), "访问过于频繁", "秒后")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("%s: Retry-After %q, want whole seconds", what, r.header.Get("Retry-After"))
	}
}

// TestRateLimit: behind a trusted proxy, 300 requests carrying a ticket or code from one client
// address within a minute pass; the 301st, on any of the four routes, gets the 429 page and
// makes no CAS or WeCom call. Requests without a ticket or code are not limited; another address
// is not affected; an address prepended by the client changes nothing; a minute later the
// address may go on.
func TestRateLimit(t *testing.T) {
	clock := &testClock{t: time.Now()}
	e := newEnv(t, withLocalBaseURL(), withTrustedProxies("127.0.0.1"),
		withRateLimiter(handlers.NewLocalRateLimiter(300, 0, clock.Now)))
	e.cas.AddUser("2022000001", "pw", "李四", "student")
	e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)

	a := e.newMember().from("203.0.113.7")
	before := e.outboundCalls()
	for i := range 300 {
		var r response
		switch i % 4 {
		case 0:
			a.get("/bind/login")
			r = a.get("/bind/cas?ticket=ST-junk-" + strconv.Itoa(i))
		case 1:
			r = a.get("/verify?code=junk" + strconv.Itoa(i))
		case 2:
			r = a.get("/unbind?code=junk" + strconv.Itoa(i) + "&state=nope")
		case 3:
			r = a.get("/me?code=junk" + strconv.Itoa(i) + "&state=nope")
		}
		if r.status == http.StatusTooManyRequests {
			t.Fatalf("request %d of 300 refused", i+1)
		}
	}
	// 75 tickets went to CAS and 75 codes to WeCom (the OAuth returns failed on their state).
	if got := e.outboundCalls() - before; got != 150 {
		t.Fatalf("%d outbound calls for 300 requests, want 150", got)
	}

	targets := limitedTargets(e, vNumber)
	a.get("/bind/login") // this browser started a login: only the limit stands in the ticket's way
	before = e.outboundCalls()
	for _, target := range targets {
		mustBeLimited(t, "301st: "+target, a.get(target))
	}
	if got := e.outboundCalls() - before; got != 0 {
		t.Fatalf("refused requests made %d CAS/WeCom calls", got)
	}
	// The proxy appends the address it saw; what the client put before it does not count.
	for _, spoof := range []string{"198.51.100.1", "127.0.0.1", "garbage"} {
		a.header.Set("X-Forwarded-For", spoof+", 203.0.113.7")
		mustBeLimited(t, "prepended "+spoof, a.get(targets[1]))
	}
	a.from("203.0.113.7")
	// Without a ticket or code nothing is called, and nothing is limited.
	mustStatus(t, "/bind", a.get("/bind"), http.StatusOK)
	mustStatus(t, "/bind/login", a.get("/bind/login"), http.StatusFound)
	mustStatus(t, "/verify", a.get("/verify"), http.StatusFound)
	if got := e.outboundCalls() - before; got != 0 {
		t.Fatalf("refused requests made %d CAS/WeCom calls", got)
	}

	// Another address behind the same proxy is not affected: each of its requests is served.
	b := e.newMember().from("203.0.113.8")
	b.get("/bind/login")
	mustStatus(t, "other address: /bind/cas", b.get(targets[0]), http.StatusOK)
	mustStatus(t, "other address: /verify", b.get(targets[1]), http.StatusOK)
	mustStatus(t, "other address: /unbind", b.oauth("/unbind", vNumber), http.StatusOK)
	mustStatus(t, "other address: /me", b.oauth("/me", vNumber), http.StatusOK)
	if got := e.outboundCalls() - before; got != 4 {
		t.Fatalf("the other address's 4 requests made %d CAS/WeCom calls", got)
	}

	// The bucket refills: a minute later the first address goes on.
	clock.Advance(time.Minute)
	a.get("/bind/login")
	r := a.get("/bind/cas?ticket=" + url.QueryEscape(e.cas.IssueTicket("2022000001", e.baseURL+"/bind/cas")))
	mustStatus(t, "a minute later", r, http.StatusOK)
	mustContain(t, "a minute later", r.page(), `action="/bind/mobile"`)
}

// TestRateLimitUntrustedPeer: X-Forwarded-For from a peer that is not a trusted proxy is ignored,
// so rotating it does not escape the limit (no proxy configured, or another one).
func TestRateLimitUntrustedPeer(t *testing.T) {
	for name, proxies := range map[string][]string{"NoProxy": nil, "OtherProxy": {"10.0.0.0/8"}} {
		t.Run(name, func(t *testing.T) {
			clock := &testClock{t: time.Now()}
			e := newEnv(t, withLocalBaseURL(), withTrustedProxies(proxies...),
				withRateLimiter(handlers.NewLocalRateLimiter(300, 0, clock.Now)))
			m := e.newMember()
			for i := range 300 {
				m.from(fmt.Sprintf("198.51.%d.%d", i/250, i%250+1))
				if r := m.get("/verify?code=junk" + strconv.Itoa(i)); r.status == http.StatusTooManyRequests {
					t.Fatalf("request %d of 300 refused", i+1)
				}
			}
			calls := e.sim.CallCount("auth/get_tfa_info")
			m.from("203.0.113.99")
			mustBeLimited(t, "301st with yet another X-Forwarded-For", m.get("/verify?code=junk"))
			if e.sim.CallCount("auth/get_tfa_info") != calls {
				t.Fatal("a refused request called WeCom")
			}
		})
	}
}

// failingLimiter is a shared limiter that cannot be reached.
type failingLimiter struct {
	mu    sync.Mutex
	calls int
}

func (f *failingLimiter) Allow(context.Context, string) (bool, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return false, 0, errors.New("redis: connection refused")
}

// TestRateLimitSharedLimiterDown: when the shared limiter fails, requests are not refused for it:
// this replica's own limit (server.rate_limit.per_minute) applies, and the failure is logged once.
func TestRateLimitSharedLimiterDown(t *testing.T) {
	shared := &failingLimiter{}
	e := newEnv(t, withLocalBaseURL(), withRateLimiter(shared), withRateLimit(3))
	m := e.newMember()
	for i := range 3 {
		r := m.get("/verify?code=junk" + strconv.Itoa(i))
		if r.status == http.StatusTooManyRequests {
			t.Fatalf("request %d refused while the shared limiter is down", i+1)
		}
	}
	mustBeLimited(t, "beyond the local limit", m.get("/verify?code=junk"))
	if shared.calls != 4 {
		t.Fatalf("shared limiter asked %d times, want 4", shared.calls)
	}
	if n := strings.Count(e.logs.String(), "rate limiter unavailable"); n != 1 {
		t.Fatalf("limiter failure logged %d times, want once", n)
	}
}

// TestVerifyTfaConcurrencyCap: 50 members open the verification page at once while WeCom answers
// slowly: WeCom never has more than 20 get_tfa_info calls in flight (its cap, WECOM.md §4), never
// answers 45033, and every member gets the page or the 503 "busy" page within the WeCom deadline.
func TestVerifyTfaConcurrencyCap(t *testing.T) {
	const timeout = time.Second
	e := newEnv(t, withLocalBaseURL(), withWeComTimeout(timeout))
	e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
	warm := e.newMember()
	expectStatus(t, "warm-up", warm.startVerify(vNumber), http.StatusOK) // the token is cached now
	e.sim.SetLatency(400 * time.Millisecond)

	codes := make([]string, 50)
	for i := range codes {
		codes[i] = e.sim.IssueTfaCode(vNumber)
	}
	answers, took := make([]response, 50), make([]time.Duration, 50)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			answers[i] = e.do(http.MethodGet, "/verify", "code="+codes[i], nil)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	ok := 0
	for i, r := range answers {
		switch r.status {
		case http.StatusOK:
			ok++
			expectForm(t, "verify page", r, "/verify/sms", "mobile")
		case http.StatusServiceUnavailable:
			expectPage(t, "busy page", r, "企业微信系统繁忙")
		default:
			t.Fatalf("request %d: status %d\n%s", i, r.status, r.body)
		}
		if took[i] > timeout+500*time.Millisecond {
			t.Fatalf("request %d took %v, past the %v WeCom deadline", i, took[i], timeout)
		}
	}
	if got := e.sim.MaxInFlight("auth/get_tfa_info"); got > 20 || got < 2 {
		t.Fatalf("%d get_tfa_info calls in flight at once, want at most 20 (and some concurrency)", got)
	}
	for _, c := range e.sim.Calls() {
		if c.ErrCode == app.WeComConcurrencyLimit {
			t.Fatal("WeCom answered 45033")
		}
	}
	if ok < 20 {
		t.Fatalf("only %d of 50 got the page", ok)
	}
	t.Logf("%d pages, %d busy; at most %d calls in flight", ok, 50-ok, e.sim.MaxInFlight("auth/get_tfa_info"))
}
