package handlers

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a callback delivery, the result label of wecampus_callbacks_total.
const (
	resultOK           = "ok"            // applied or recorded; empty 200
	resultReply        = "reply"         // answered with an encrypted passive reply
	resultVerified     = "verified"      // GET URL verification answered
	resultBadSignature = "bad_signature" // 403
	resultStale        = "stale"         // 403: timestamp outside wecom.callback_max_age
	resultMalformed    = "malformed"     // 400 (or 413 for an oversize body)
	resultWrongCorp    = "wrong_corp"    // 400
	resultError        = "error"         // 503 or 500: not applied, WeCom retries
)

// Kind labels for deliveries that were not decrypted, and for kinds outside knownKinds.
const (
	kindUnknown = "unknown" // refused before the kind was known
	kindVerify  = "verify"  // GET URL verification
	kindOther   = "other"   // decrypted, but not a kind we count separately
)

// knownKinds bounds the kind label: app.Inbound.Kind() comes from the sender's XML, so anything
// not listed here is counted as "other" and cannot grow the label set.
var knownKinds = map[string]struct{}{
	"text": {}, "image": {}, "voice": {}, "video": {}, "location": {}, "link": {}, "file": {},
	"subscribe": {}, "unsubscribe": {}, "enter_agent": {}, "click": {}, "view": {}, "LOCATION": {},
	"scancode_push": {}, "scancode_waitmsg": {}, "batch_job_result": {},
	"change_contact.create_user": {}, "change_contact.update_user": {}, "change_contact.delete_user": {},
	"change_contact.create_party": {}, "change_contact.update_party": {}, "change_contact.delete_party": {},
	"change_contact.update_tag": {},
}

// metricKind maps an inbound kind to a bounded label value.
func metricKind(kind string) string {
	if _, ok := knownKinds[kind]; ok {
		return kind
	}
	return kindOther
}

// metrics are the collectors of the handlers package.
type metrics struct {
	callbacks       *prometheus.CounterVec   // wecampus_callbacks_total{channel,kind,result}
	requests        *prometheus.CounterVec   // wecampus_http_requests_total{route,method,code}
	requestDuration *prometheus.HistogramVec // wecampus_http_request_duration_seconds{route}

	callbackCounters counterCache
	requestCounters  counterCache

	// durations holds the latency observer of every route, resolved once by prepare so that the
	// hot path does a plain map read instead of hashing label values under a lock. It is never
	// written after prepare.
	durations map[string]prometheus.Observer
}

// newMetrics creates the collectors and registers them on reg. A collector that is already
// registered (a second New on the same registry, as in tests) is reused.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecampus_callbacks_total",
			Help: "WeCom callback deliveries by channel (app, contacts), kind and result.",
		}, []string{"channel", "kind", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecampus_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wecampus_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern (WeCom gives up on a callback after 5 s).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	var err error
	m.callbacks, err = register(reg, m.callbacks)
	if err != nil {
		return nil, err
	}
	m.requests, err = register(reg, m.requests)
	if err != nil {
		return nil, err
	}
	m.requestDuration, err = register(reg, m.requestDuration)
	if err != nil {
		return nil, err
	}
	m.callbackCounters.vec = m.callbacks
	m.requestCounters.vec = m.requests
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		var zero C
		return zero, fmt.Errorf("handlers: register metrics: %w", err)
	}
	return c, nil
}

// prepare resolves the latency observers of routes (the route patterns) and of unmatched requests.
func (m *metrics) prepare(routes []string) {
	m.durations = make(map[string]prometheus.Observer, len(routes)+1)
	for _, r := range append(routes, routeUnmatched) {
		m.durations[r] = m.requestDuration.WithLabelValues(r)
	}
}

// routeUnmatched is the route label of a request no route matched (404, 405).
const routeUnmatched = "unmatched"

// observeCallback counts one callback delivery (its latency is the route's).
func (m *metrics) observeCallback(channel, kind, result string) {
	m.callbackCounters.with(channel, kind, result).Inc()
}

// observeRequest counts one HTTP request; route is the matched pattern ("" when none matched).
func (m *metrics) observeRequest(route, method string, code int, d time.Duration) {
	if route == "" {
		route = routeUnmatched
	}
	switch method {
	case "GET", "POST", "HEAD":
	default:
		method = "other" // methods come from the client: keep the label set bounded
	}
	m.requestCounters.with(route, method, statusLabel(code)).Inc()
	obs, ok := m.durations[route]
	if !ok {
		obs = m.requestDuration.WithLabelValues(route) // a route added after prepare
	}
	obs.Observe(d.Seconds())
}

// counterCache memoizes the children of a three-label CounterVec. WithLabelValues hashes and
// validates the values and takes the vector's lock on every call; this is a read-locked map
// lookup. The label values are bounded by their callers, so the map is too.
type counterCache struct {
	vec *prometheus.CounterVec
	mu  sync.RWMutex
	m   map[[3]string]prometheus.Counter
}

func (c *counterCache) with(a, b, d string) prometheus.Counter {
	k := [3]string{a, b, d}
	c.mu.RLock()
	ctr, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return ctr
	}
	ctr = c.vec.WithLabelValues(a, b, d)
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[[3]string]prometheus.Counter)
	}
	c.m[k] = ctr
	c.mu.Unlock()
	return ctr
}

// statusLabel avoids formatting the common status codes on every request.
func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 302:
		return "302"
	case 303:
		return "303"
	case 400:
		return "400"
	case 403:
		return "403"
	case 404:
		return "404"
	case 405:
		return "405"
	case 413:
		return "413"
	case 500:
		return "500"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}
