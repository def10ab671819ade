package handlers

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/callback"
)

func newTestEngine(t *testing.T, log *slog.Logger) *gin.Engine {
	t.Helper()
	codec, err := callback.New("wwcampus00000001", "token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{BaseURL: "https://wecampus.example.edu.cn/", SessionSecret: testSecret}, Deps{
		Service:  &app.Service{},
		AppCodec: codec,
		Ready:    func(context.Context) error { return nil },
		Log:      log,
		AuthURL:  testAuthURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h.(*Server).engine
}

func TestNewValidates(t *testing.T) {
	codec, err := callback.New("wwcampus00000001", "token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
	if err != nil {
		t.Fatal(err)
	}
	ready := func(context.Context) error { return nil }
	for name, tc := range map[string]struct {
		cfg  Config
		deps Deps
	}{
		"NoService":        {Config{BaseURL: "https://x.example", SessionSecret: testSecret}, Deps{AppCodec: codec, Ready: ready, AuthURL: testAuthURL}},
		"NoAppCodec":       {Config{BaseURL: "https://x.example", SessionSecret: testSecret}, Deps{Service: &app.Service{}, Ready: ready, AuthURL: testAuthURL}},
		"RelativeBaseURL":  {Config{BaseURL: "/wecampus", SessionSecret: testSecret}, Deps{Service: &app.Service{}, AppCodec: codec, Ready: ready, AuthURL: testAuthURL}},
		"NoReadyNoStore":   {Config{BaseURL: "https://x.example", SessionSecret: testSecret}, Deps{Service: &app.Service{}, AppCodec: codec, AuthURL: testAuthURL}},
		"BadTrustedProxie": {Config{BaseURL: "https://x.example", SessionSecret: testSecret, TrustedProxies: []string{"not-an-ip"}}, Deps{Service: &app.Service{}, AppCodec: codec, Ready: ready, AuthURL: testAuthURL}},
		"ShortSecret":      {Config{BaseURL: "https://x.example", SessionSecret: "short"}, Deps{Service: &app.Service{}, AppCodec: codec, Ready: ready, AuthURL: testAuthURL}},
		"NoAuthURL":        {Config{BaseURL: "https://x.example", SessionSecret: testSecret}, Deps{Service: &app.Service{}, AppCodec: codec, Ready: ready}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(tc.cfg, tc.deps); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}

func TestRecovery(t *testing.T) {
	var logs bytes.Buffer
	e := newTestEngine(t, slog.New(slog.NewJSONHandler(&logs, nil)))
	e.GET("/boom", func(c *gin.Context) { panic(errors.New("secret internal detail")) })

	req := httptest.NewRequest(http.MethodGet, "/boom", nil)
	req.Header.Set(HeaderRequestID, "req-42")
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)

	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", w.Code)
	}
	body := w.Body.String()
	if !strings.Contains(body, "系统内部错误") || !strings.Contains(body, "req-42") {
		t.Errorf("page %s", body)
	}
	if strings.Contains(body, "secret internal detail") || strings.Contains(body, "goroutine") || strings.Contains(body, ".go:") {
		t.Errorf("the page leaks the panic: %s", body)
	}
	l := logs.String()
	if !strings.Contains(l, "secret internal detail") || !strings.Contains(l, "goroutine") || !strings.Contains(l, `"request_id":"req-42"`) {
		t.Errorf("the panic was not logged with its stack and request id:\n%s", l)
	}
	if !strings.Contains(l, `"msg":"http GET"`) || !strings.Contains(l, `"status":500`) {
		t.Errorf("the 500 is missing from the access log:\n%s", l)
	}
}

func TestRequestIDInContext(t *testing.T) {
	e := newTestEngine(t, slog.New(slog.DiscardHandler))
	var fromReq, fromGin string
	e.GET("/id", func(c *gin.Context) {
		fromReq = RequestID(c.Request.Context())
		fromGin = RequestID(c)
	})
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/id", nil))
	if fromReq == "" || fromReq != w.Header().Get(HeaderRequestID) || fromGin != fromReq {
		t.Errorf("context id %q, gin context id %q, header %q", fromReq, fromGin, w.Header().Get(HeaderRequestID))
	}
	if RequestID(context.Background()) != "" {
		t.Error("an id outside a request")
	}
}

func TestParseCallbackQuery(t *testing.T) {
	tests := []struct {
		raw  string
		ok   bool
		want callbackQuery
	}{
		{"msg_signature=s&timestamp=1&nonce=n", true, callbackQuery{signature: "s", timestamp: "1", nonce: "n"}},
		{"nonce=n&x=1&timestamp=17&msg_signature=s&echostr=a%2Bb%2F%3D", true, callbackQuery{"s", "17", "n", "a+b/="}},
		{"msg_signature=s&timestamp=1&nonce=n&echostr=a+b", true, callbackQuery{"s", "1", "n", "a b"}},
		{"msg_signature=s&timestamp=1&nonce=n&&", true, callbackQuery{signature: "s", timestamp: "1", nonce: "n"}},
		{"msg_signature=s&timestamp=1", false, callbackQuery{}},
		{"msg_signature=&timestamp=1&nonce=n", false, callbackQuery{}},
		{"msg_signature=s&timestamp=x1&nonce=n", false, callbackQuery{}},
		{"msg_signature=s&timestamp=-1&nonce=n", false, callbackQuery{}},
		{"msg_signature=s&timestamp=1&nonce=n&nonce=n", false, callbackQuery{}},
		{"msg_signature=s&timestamp=1&nonce=n&echostr=&echostr=", false, callbackQuery{}},
		{"msg_signature=s&timestamp=1&nonce=%zz", false, callbackQuery{}},
		{"", false, callbackQuery{}},
	}
	for _, tt := range tests {
		got, ok := parseCallbackQuery(tt.raw)
		if ok != tt.ok || ok && got != tt.want {
			t.Errorf("parseCallbackQuery(%q) = %+v, %v; want %+v, %v", tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}

func TestMetricKindBounded(t *testing.T) {
	for kind, want := range map[string]string{
		"click": "click", "text": "text", "change_contact.update_user": "change_contact.update_user",
		"change_contact.": "other", "change_contact.evil" + strings.Repeat("x", 100): "other", "": "other", "CLICK": "other",
	} {
		if got := metricKind(kind); got != want {
			t.Errorf("metricKind(%q) = %q, want %q", kind, got, want)
		}
	}
}

const testSecret = "0123456789abcdef0123456789abcdef"

func testAuthURL(redirectURI, state string) string {
	return "https://open.example/authorize?redirect_uri=" + redirectURI + "&state=" + state
}
