package sms_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/sms"
)

const (
	mobile = "13800000000"
	code   = "123456"
	token  = "gw-token-very-secret"
)

func wantCode(t *testing.T, err error, want string) {
	t.Helper()
	if got := app.ErrorCode(err); got != want {
		t.Fatalf("error code = %q, want %q (err: %v)", got, want, err)
	}
}

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	l := sms.NewLog(slog.New(slog.NewTextHandler(&buf, nil)))
	if _, ok := l.Last(mobile); ok {
		t.Fatal("Last before any send reported a code")
	}
	ctx := context.Background()
	if err := l.Send(ctx, mobile, "111111", sms.PurposeVerify, "验证码 111111"); err != nil {
		t.Fatal(err)
	}
	if err := l.Send(ctx, mobile, code, sms.PurposeUnbind, "验证码 "+code); err != nil {
		t.Fatal(err)
	}
	if got, ok := l.Last(mobile); !ok || got != code {
		t.Errorf("Last = %q, %v; want %q", got, ok, code)
	}
	if _, ok := l.Last("13900000000"); ok {
		t.Error("Last reported a code for another mobile")
	}
	out := buf.String()
	if !strings.Contains(out, "code="+code) || !strings.Contains(out, "138****0000") {
		t.Errorf("log lacks the code or the masked mobile:\n%s", out)
	}
	if strings.Contains(out, mobile) {
		t.Errorf("log shows the full mobile:\n%s", out)
	}
	if err := l.Send(ctx, mobile, code, "bogus", ""); err == nil {
		t.Error("unknown purpose accepted")
	}
}

func TestNewHTTP(t *testing.T) {
	for _, tc := range []struct {
		name, url, token string
		ok               bool
	}{
		{"OK", "https://sms.example.edu.cn/send", token, true},
		{"ErrRelative", "/send", token, false},
		{"ErrScheme", "ftp://sms.example.edu.cn/send", token, false},
		{"ErrEmptyURL", "", token, false},
		{"ErrEmptyToken", "https://sms.example.edu.cn/send", " ", false},
		{"ErrTokenNewline", "https://sms.example.edu.cn/send", "a\r\nX-Evil: 1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sms.NewHTTP(tc.url, tc.token, nil)
			if (err == nil) != tc.ok {
				t.Fatalf("NewHTTP(%q) err = %v, want ok=%v", tc.url, err, tc.ok)
			}
			if err != nil && (!strings.Contains(err.Error(), "sms.http.") || strings.Contains(err.Error(), token)) {
				t.Errorf("error %q should name the key and not show the token", err)
			}
		})
	}
}

func TestHTTP(t *testing.T) {
	ctx := context.Background()
	message := "您的验证码为 123456,5 分钟内有效。"

	t.Run("OK", func(t *testing.T) {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			body, _ := io.ReadAll(r.Body)
			want := `{"mobile":"13800000000","code":"123456","purpose":"verify","message":"` + message + `"}`
			switch {
			case r.Method != http.MethodPost || r.URL.Path != "/api/send":
				http.Error(w, "wrong method or path "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			case r.Header.Get("Authorization") != "Bearer "+token:
				http.Error(w, "wrong authorization", http.StatusUnauthorized)
			case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
				http.Error(w, "wrong content type", http.StatusBadRequest)
			case string(body) != want:
				http.Error(w, "wrong body "+string(body), http.StatusBadRequest)
			default:
				w.WriteHeader(http.StatusAccepted) // any 2xx is success
			}
		}))
		defer srv.Close()
		h, err := sms.NewHTTP(srv.URL+"/api/send", token, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Send(ctx, mobile, code, sms.PurposeVerify, message); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 1 {
			t.Errorf("gateway called %d times, want 1", calls.Load())
		}
		if s := fmt.Sprintf("%v %+v %s", h, h, h); strings.Contains(s, token) {
			t.Errorf("formatting the provider shows the token: %s", s)
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "provider", h)
		if strings.Contains(buf.String(), token) {
			t.Errorf("slog shows the token: %s", buf.String())
		}
	})

	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusInternalServerError, http.StatusFound} {
		t.Run(fmt.Sprintf("Err%d", status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if status == http.StatusFound {
					http.Redirect(w, r, "/elsewhere", status) // must not be followed with the token
					return
				}
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"error":"cannot send %s to %s"}`, code, mobile)
			}))
			defer srv.Close()
			h, err := sms.NewHTTP(srv.URL+"/send?key=abc", token, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = h.Send(ctx, mobile, code, sms.PurposeUnbind, message)
			wantCode(t, err, app.EUNAVAILABLE)
			if app.ErrorMessage(err) != "短信发送失败,请稍后再试。" {
				t.Errorf("message = %q", app.ErrorMessage(err))
			}
			for _, secret := range []string{token, mobile, code, "key=abc"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows %q", err, secret)
				}
			}
		})
	}

	t.Run("ErrTimeout", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client hanging up
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		h, err := sms.NewHTTP(srv.URL, token, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.Timeout = 100 * time.Millisecond
		start := time.Now()
		err = h.Send(ctx, mobile, code, sms.PurposeRebind, message)
		wantCode(t, err, app.EUNAVAILABLE)
		if d := time.Since(start); d > time.Second {
			t.Errorf("Send took %s, want about the 100ms timeout", d)
		}
	})

	t.Run("ErrUnreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		h, err := sms.NewHTTP(srv.URL, token, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, h.Send(ctx, mobile, code, sms.PurposeVerify, message), app.EUNAVAILABLE)
	})

	t.Run("ErrPurpose", func(t *testing.T) {
		h, err := sms.NewHTTP("http://127.0.0.1:1/", token, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Send(ctx, mobile, code, "login", message); err == nil {
			t.Fatal("unknown purpose accepted")
		}
	})
}

// tencentFake is a stand-in for sms.tencentcloudapi.com: it checks the TC3-HMAC-SHA256 signature
// (https://cloud.tencent.com/document/api/382/52072) and the SendSms request, then answers with
// status, whose Code the test chooses.
type tencentFake struct {
	t         *testing.T
	secretID  string
	secretKey string
	status    string        // SendStatus code to answer; "" = answer an API-level error
	latency   time.Duration // delay before answering
	calls     atomic.Int32
	srv       *httptest.Server
}

func newTencentFake(t *testing.T, status string) *tencentFake {
	f := &tencentFake{t: t, secretID: "AKIDtest", secretKey: "tencent-secret-key", status: status}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func (f *tencentFake) fail(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"Response":{"Error":{"Code":%q,"Message":%q},"RequestId":"req-err"}}`, code, msg)
}

func (f *tencentFake) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	body, _ := io.ReadAll(r.Body) // read first, so the server notices the client hanging up
	if f.latency > 0 {
		select {
		case <-time.After(f.latency):
		case <-r.Context().Done():
			return
		}
	}
	if r.Method != http.MethodPost || r.Header.Get("X-TC-Action") != "SendSms" || r.Header.Get("X-TC-Version") != "2021-01-11" {
		f.fail(w, "InvalidAction", "want POST SendSms 2021-01-11, got "+r.Method+" "+r.Header.Get("X-TC-Action")+" "+r.Header.Get("X-TC-Version"))
		return
	}
	if r.Header.Get("X-TC-Region") != "ap-guangzhou" {
		f.fail(w, "InvalidParameter", "region "+r.Header.Get("X-TC-Region"))
		return
	}

	// Verify the signature with the secret key, independently of the SDK.
	ts := r.Header.Get("X-TC-Timestamp")
	var sec int64
	fmt.Sscan(ts, &sec)
	date := time.Unix(sec, 0).UTC().Format("2006-01-02")
	scope := date + "/sms/tc3_request"
	canonical := "POST\n/\n\ncontent-type:" + r.Header.Get("Content-Type") + "\nhost:" + r.Host + "\n\ncontent-type;host\n" + sha256hex(string(body))
	toSign := "TC3-HMAC-SHA256\n" + ts + "\n" + scope + "\n" + sha256hex(canonical)
	k := hmacSHA256([]byte("TC3"+f.secretKey), date)
	k = hmacSHA256(k, "sms")
	k = hmacSHA256(k, "tc3_request")
	wantAuth := "TC3-HMAC-SHA256 Credential=" + f.secretID + "/" + scope + ", SignedHeaders=content-type;host, Signature=" +
		hex.EncodeToString(hmacSHA256(k, toSign))
	if r.Header.Get("Authorization") != wantAuth {
		f.fail(w, "AuthFailure.SignatureFailure", "The provided credentials could not be validated.")
		return
	}

	var req struct {
		PhoneNumberSet   []string
		SmsSdkAppId      string
		SignName         string
		TemplateId       string
		TemplateParamSet []string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		f.fail(w, "InvalidParameter", err.Error())
		return
	}
	if !reflect.DeepEqual(req.PhoneNumberSet, []string{"+86" + mobile}) || !reflect.DeepEqual(req.TemplateParamSet, []string{code, "5"}) ||
		req.SmsSdkAppId != "1400006666" || req.SignName != "某某大学" || req.TemplateId != "1110" {
		f.fail(w, "InvalidParameter", fmt.Sprintf("unexpected request %+v", req))
		return
	}
	if f.status == "" {
		f.fail(w, "FailedOperation.InsufficientBalanceInSmsPackage", "insufficient balance")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"Response":{"SendStatusSet":[{"SerialNo":"2028:1","PhoneNumber":"+86%s","Fee":1,"SessionContext":"verify","Code":%q,"Message":"status for +86%s","IsoCode":"CN"}],"RequestId":"req-1"}}`,
		mobile, f.status, mobile)
}

func (f *tencentFake) provider(t *testing.T, mutate func(*sms.TencentConfig)) *sms.TencentCloud {
	t.Helper()
	cfg := sms.TencentConfig{
		SecretID: f.secretID, SecretKey: f.secretKey, SDKAppID: "1400006666", SignName: "某某大学", TemplateID: "1110",
		Endpoint: f.srv.URL,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := sms.NewTencentCloud(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTencentCloud(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		f := newTencentFake(t, "Ok")
		flags := log.Flags()
		p := f.provider(t, nil)
		if log.Flags() != flags {
			t.Errorf("NewTencentCloud changed the standard logger's flags from %d to %d", flags, log.Flags())
		}
		if err := p.Send(ctx, mobile, code, sms.PurposeVerify, "ignored"); err != nil {
			t.Fatal(err)
		}
		if f.calls.Load() != 1 {
			t.Errorf("calls = %d, want 1", f.calls.Load())
		}
	})

	for _, tc := range []struct{ status, code string }{
		{"LimitExceeded.PhoneNumberDailyLimit", app.ETOOMANY},
		{"InvalidParameterValue.IncorrectPhoneNumber", app.EINVALID},
		{"FailedOperation.SignatureIncorrectOrUnapproved", app.EUNAVAILABLE},
		{"", app.EUNAVAILABLE}, // API-level error
	} {
		t.Run("Err"+tc.status, func(t *testing.T) {
			f := newTencentFake(t, tc.status)
			err := f.provider(t, nil).Send(ctx, mobile, code, sms.PurposeUnbind, "")
			wantCode(t, err, tc.code)
			if strings.Contains(err.Error(), mobile) || strings.Contains(err.Error(), code) {
				t.Errorf("error %q shows the mobile or the code", err)
			}
		})
	}

	t.Run("ErrWrongSecret", func(t *testing.T) {
		f := newTencentFake(t, "Ok")
		err := f.provider(t, func(c *sms.TencentConfig) { c.SecretKey = "wrong" }).Send(ctx, mobile, code, sms.PurposeVerify, "")
		wantCode(t, err, app.EUNAVAILABLE)
		if !strings.Contains(err.Error(), "AuthFailure.SignatureFailure") || strings.Contains(err.Error(), "wrong") {
			t.Errorf("error = %v", err)
		}
	})

	t.Run("ErrHTTP500", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "upstream down for "+mobile, http.StatusInternalServerError)
		}))
		defer srv.Close()
		f := newTencentFake(t, "Ok")
		err := f.provider(t, func(c *sms.TencentConfig) { c.Endpoint = srv.URL }).Send(ctx, mobile, code, sms.PurposeVerify, "")
		wantCode(t, err, app.EUNAVAILABLE)
		if strings.Contains(err.Error(), mobile) {
			t.Errorf("error %q shows the mobile", err)
		}
	})

	t.Run("ErrTimeout", func(t *testing.T) {
		f := newTencentFake(t, "Ok")
		f.latency = 3 * time.Second
		p := f.provider(t, func(c *sms.TencentConfig) { c.Timeout = 150 * time.Millisecond })
		start := time.Now()
		err := p.Send(ctx, mobile, code, sms.PurposeVerify, "")
		wantCode(t, err, app.EUNAVAILABLE)
		if d := time.Since(start); d > time.Second {
			t.Errorf("Send took %s, want about the 150ms timeout", d)
		}
	})

	t.Run("ErrConfig", func(t *testing.T) {
		_, err := sms.NewTencentCloud(sms.TencentConfig{SecretID: "id", SecretKey: "key-secret", SignName: "x"})
		if err == nil || !strings.Contains(err.Error(), "sms.tencentcloud.sdk_app_id") || !strings.Contains(err.Error(), "template_id") {
			t.Fatalf("missing fields: err = %v", err)
		}
		if strings.Contains(err.Error(), "key-secret") {
			t.Errorf("error shows the secret: %v", err)
		}
		_, err = sms.NewTencentCloud(sms.TencentConfig{SecretID: "id", SecretKey: "k", SDKAppID: "1", SignName: "s", TemplateID: "t", Endpoint: "ftp://x"})
		if err == nil {
			t.Fatal("ftp endpoint accepted")
		}
	})
}
