package handlers

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/callback"
)

const (
	routeTestCorp  = "wwcampus00000001"
	routeTestToken = "token"
	routeTestKey   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// newRouteTestServer is New over an app.Service without a store: a callback that reaches the
// service panics there.
func newRouteTestServer(t *testing.T, logs *bytes.Buffer, reg *prometheus.Registry) *Server {
	t.Helper()
	codec, err := callback.New(routeTestCorp, routeTestToken, routeTestKey)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{BaseURL: "https://wecampus.example.edu.cn/", SessionSecret: testSecret}, Deps{
		Service:  &app.Service{},
		AppCodec: codec,
		Ready:    func(context.Context) error { return nil },
		Log:      slog.New(slog.NewJSONHandler(logs, nil)),
		AuthURL:  testAuthURL,
		Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h.(*Server)
}

// subscribeRequest is an encrypted, correctly signed subscribe event for the test server (the
// service applies it through its store).
func subscribeRequest(t *testing.T) *http.Request {
	t.Helper()
	codec, err := callback.New(routeTestCorp, routeTestToken, routeTestKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	plain := callback.EventXML(&app.Inbound{ToUser: routeTestCorp, FromUser: "2021123456", CreateTime: now,
		MsgType: "event", Event: "subscribe", AgentID: "1000002"})
	body, sig, err := codec.EncryptEvent(plain, ts, "42")
	if err != nil {
		t.Fatal(err)
	}
	return httptest.NewRequest(http.MethodPost, routeAppCallback+"?msg_signature="+sig+"&timestamp="+ts+"&nonce=42", bytes.NewReader(body))
}

// A panic on the callback's lean path is a logged 500 with the request id, counted and logged
// like any request, and the server goes on.
func TestCallbackPanicRecovered(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	s := newRouteTestServer(t, &logs, reg)

	req := subscribeRequest(t)
	req.Header.Set(HeaderRequestID, "req-7")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", w.Code)
	}
	if got := w.Header().Get(HeaderRequestID); got != "req-7" {
		t.Errorf("X-Request-Id %q", got)
	}
	if body := w.Body.String(); !strings.Contains(body, "系统内部错误") || strings.Contains(body, "goroutine") {
		t.Errorf("page %s", body)
	}
	l := logs.String()
	for _, want := range []string{`"msg":"panic serving request"`, `"request_id":"req-7"`, `"stack":"goroutine`,
		`"msg":"http POST","path":"/wecom/callback","status":500`} {
		if !strings.Contains(l, want) {
			t.Errorf("logs lack %s:\n%s", want, l)
		}
	}
	if got := gatheredCounters(t, reg, "wecampus_http_requests_total"); got != `{code="500",method="POST",route="/wecom/callback"} 1` {
		t.Errorf("wecampus_http_requests_total: %s", got)
	}

	// The server still answers.
	w = httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != http.StatusOK {
		t.Errorf("healthz after the panic: %d", w.Code)
	}
}

// GET and POST on the callback routes are served without gin, the rest through gin: the same
// answers either way, the request id echoed, one request counted each.
func TestCallbackRouteDispatch(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	s := newRouteTestServer(t, &logs, reg)
	for _, tc := range []struct {
		method, target string
		want           int
	}{
		{http.MethodPost, routeAppCallback + "?timestamp=1", http.StatusBadRequest},                        // lean
		{http.MethodGet, routeAppCallback + "?msg_signature=s&timestamp=1&nonce=n", http.StatusBadRequest}, // lean, no echostr
		{http.MethodPut, routeAppCallback, http.StatusMethodNotAllowed},                                    // gin
		{http.MethodPost, routeContactsCallback, http.StatusNotFound},                                      // gin: no contacts codec
	} {
		for name, h := range map[string]http.Handler{"server": s, "engine": s.engine} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.target, strings.NewReader("<xml/>")))
			if w.Code != tc.want || w.Header().Get(HeaderRequestID) == "" {
				t.Errorf("%s %s %s: %d (request id %q), want %d", name, tc.method, tc.target, w.Code, w.Header().Get(HeaderRequestID), tc.want)
			}
		}
	}
	if allow := func() string {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPut, routeAppCallback, nil))
		return w.Header().Get("Allow")
	}(); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q", allow)
	}
	want := `{channel="app",kind="unknown",result="malformed"} 2` + "\n" + `{channel="app",kind="verify",result="malformed"} 2`
	if got := gatheredCounters(t, reg, "wecampus_callbacks_total"); got != want {
		t.Errorf("wecampus_callbacks_total:\n%s\nwant\n%s", got, want)
	}
	if n := strings.Count(logs.String(), `"msg":"callback refused"`); n != 4 {
		t.Errorf("%d refusals logged, want 4:\n%s", n, logs.String())
	}
}

// gatheredCounters lists the series of the counter name in reg, one `{labels} value` a line.
func gatheredCounters(t *testing.T, reg *prometheus.Registry, name string) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			lines = append(lines, "{"+strings.Join(labels, ",")+"} "+strconv.FormatFloat(m.GetCounter().GetValue(), 'g', -1, 64))
		}
	}
	return strings.Join(lines, "\n")
}

// Behind a trusted proxy, the access log of a refused callback names the forwarded client, as
// gin's ClientIP does for the other routes.
func TestCallbackAccessLogBehindProxy(t *testing.T) {
	codec, err := callback.New(routeTestCorp, routeTestToken, routeTestKey)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	h, err := New(Config{BaseURL: "https://wecampus.example.edu.cn/", SessionSecret: testSecret, TrustedProxies: []string{"10.0.0.0/8"}}, Deps{
		Service:  &app.Service{},
		AppCodec: codec,
		Ready:    func(context.Context) error { return nil },
		Log:      slog.New(slog.NewJSONHandler(&logs, nil)),
		AuthURL:  testAuthURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ remote, forwarded, want string }{
		{"10.1.2.3:5555", "203.0.113.9", "203.0.113.9"}, // trusted proxy
		{"192.0.2.7:5555", "203.0.113.9", "192.0.2.7"},  // not a proxy of ours: the header is ignored
		{"10.1.2.3:5555", "", "10.1.2.3"},               // no header
	} {
		logs.Reset()
		req := httptest.NewRequest(http.MethodPost, routeAppCallback, strings.NewReader("<xml/>"))
		req.RemoteAddr = tc.remote
		if tc.forwarded != "" {
			req.Header.Set("X-Forwarded-For", tc.forwarded)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest || !strings.Contains(logs.String(), `"ip":"`+tc.want+`"`) {
			t.Errorf("%s via %s: status %d, want ip %s in\n%s", tc.forwarded, tc.remote, w.Code, tc.want, logs.String())
		}
	}
}
