package handlers_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wecampus/wecampus/app"
)

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t)
	if r := e.do(http.MethodGet, "/healthz", "", nil); r.status != http.StatusOK {
		t.Errorf("/healthz: %d", r.status)
	}
	if r := e.do(http.MethodGet, "/readyz", "", nil); r.status != http.StatusOK {
		t.Errorf("/readyz with the database up: %d", r.status)
	}
	if r := e.do(http.MethodPost, "/healthz", "", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", r.status)
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	if r := e.do(http.MethodGet, "/readyz", "", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database closed: %d, want 503", r.status)
	}
	if r := e.do(http.MethodGet, "/healthz", "", nil); r.status != http.StatusOK {
		t.Errorf("/healthz is liveness only and must not depend on the database: %d", r.status)
	}
}

// With Redis down a replica serves degraded: still ready, and /readyz says so.
func TestReadinessRedisDegraded(t *testing.T) {
	var up atomic.Bool
	e := newEnv(t, withRedisUp(up.Load))
	if r := e.do(http.MethodGet, "/readyz", "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), "redis: degraded") {
		t.Errorf("/readyz with Redis down: %d %q, want 200 naming redis: degraded", r.status, r.body)
	}
	up.Store(true)
	if r := e.do(http.MethodGet, "/readyz", "", nil); r.status != http.StatusOK || strings.Contains(string(r.body), "degraded") {
		t.Errorf("/readyz with Redis up: %d %q", r.status, r.body)
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	if r := e.do(http.MethodGet, "/readyz", "", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database closed and Redis up: %d, want 503", r.status)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	help := e.event(&app.Inbound{FromUser: "u1", MsgType: "event", Event: "click", EventKey: "HELP", AgentID: "1000002"})
	if r := e.post(help); r.status != http.StatusOK || len(r.body) == 0 {
		t.Fatalf("HELP click: %d", r.status)
	}
	// Kinds come from the sender: unknown ones share one label value.
	for _, ev := range []string{"weird_event_1", "weird_event_2"} {
		d := e.event(&app.Inbound{FromUser: "u1", MsgType: "event", Event: ev, AgentID: "1000002"})
		if r := e.post(d); r.status != http.StatusOK {
			t.Fatalf("%s: %d", ev, r.status)
		}
	}
	e.do(http.MethodGet, "/no/such/page", "code=secret-oauth-code", nil)

	r := e.do(http.MethodGet, "/metrics", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.status)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	m := string(r.body)
	for _, want := range []string{
		`wecampus_callbacks_total{channel="app",kind="click",result="reply"} 1`,
		`wecampus_callbacks_total{channel="app",kind="other",result="ok"} 2`,
		`wecampus_http_request_duration_seconds_count{route="/wecom/callback"} 3`,
		`wecampus_http_requests_total{code="200",method="POST",route="/wecom/callback"} 3`,
		`wecampus_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "weird_event") {
		t.Error("an unknown event kind became a label value")
	}
}

func TestAccessLogAndRequestID(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/healthz", "code=OAUTHCODE123&ticket=ST-CASTICKET", nil)
	id := r.header.Get("X-Request-Id")
	if id == "" {
		t.Fatal("no X-Request-Id in the response")
	}
	r2 := e.do(http.MethodGet, "/healthz", "", nil)
	if id2 := r2.header.Get("X-Request-Id"); id2 == "" || id2 == id {
		t.Errorf("request ids %q and %q, want two different ones", id, id2)
	}

	logs := e.logs.String()
	if strings.Contains(logs, "OAUTHCODE123") || strings.Contains(logs, "CASTICKET") {
		t.Errorf("the query string reached the log:\n%s", logs)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "http GET" && rec["request_id"] == id {
			found = true
			if rec["path"] != "/healthz" || rec["status"] != float64(200) || rec["latency"] == nil || rec["ip"] != "127.0.0.1" {
				t.Errorf("access log record %v", rec)
			}
		}
	}
	if !found {
		t.Errorf("no access log line with request id %s:\n%s", id, logs)
	}

	// An unusual method is logged under a generic message, with the method as an attribute.
	if r := e.do("PROPFIND", "/healthz", "", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PROPFIND /healthz: %d, want 405", r.status)
	}
	if !strings.Contains(e.logs.String(), `"msg":"http request","path":"/healthz","status":405`) ||
		!strings.Contains(e.logs.String(), `"method":"PROPFIND"`) {
		t.Errorf("PROPFIND not logged as expected:\n%s", e.logs.String())
	}

	// An incoming id is kept when sane, replaced otherwise.
	for _, tc := range []struct {
		in   string
		keep bool
	}{
		{"abc-123_DEF.4:5", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"bad id with spaces", false},
		{"evil\"quote", false},
		{"中文", false},
	} {
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Request-Id", tc.in)
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		got := res.Header.Get("X-Request-Id")
		if tc.keep && got != tc.in || !tc.keep && (got == tc.in || got == "") {
			t.Errorf("incoming %q: response id %q", tc.in, got)
		}
	}
}

func TestNotFoundPage(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/nope", "", nil)
	if r.status != http.StatusNotFound {
		t.Fatalf("status %d", r.status)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}
	if !strings.Contains(string(r.body), "页面不存在") {
		t.Errorf("body %s", r.body)
	}
}

// TestFaviconRoute: browsers ask for /favicon.ico on their own; it is the icon, not the 404 page.
func TestFaviconRoute(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/favicon.ico", "", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/x-icon" || len(r.body) < 100 {
		t.Fatalf("GET /favicon.ico: %d %q, %d bytes", r.status, r.header.Get("Content-Type"), len(r.body))
	}
}
