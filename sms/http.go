package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wecampus/wecampus/app"
)

const defaultTimeout = 5 * time.Second

// HTTP is an app.SMS that posts each code to the school's SMS gateway (CONTRACT §4):
//
//	POST {sms.http.url}
//	Authorization: Bearer {sms.http.token}
//	{"mobile":"13800000000","code":"123456","purpose":"verify|unbind|migrate","message":"…"}
//
// Any 2xx answer means sent. Redirects are not followed, so the token never leaves for another URL.
type HTTP struct {
	url    string
	safe   string // url without query or user info, for errors
	token  string
	client *http.Client

	// Timeout bounds one send, connection included (default 5s).
	Timeout time.Duration
}

var _ app.SMS = (*HTTP)(nil)

// NewHTTP returns an HTTP provider for the gateway at rawURL (absolute http or https) with the
// bearer token. client nil means a client of its own. Errors name the config key.
func NewHTTP(rawURL, token string, client *http.Client) (*HTTP, error) {
	var problems []error
	u, err := url.Parse(strings.TrimSpace(rawURL))
	switch {
	case strings.TrimSpace(rawURL) == "":
		problems = append(problems, errors.New("sms.http.url: required when sms.provider is http"))
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		problems = append(problems, errors.New("sms.http.url: must be an absolute http(s) URL"))
	}
	switch {
	case strings.TrimSpace(token) == "":
		problems = append(problems, errors.New("sms.http.token: required when sms.provider is http"))
	case strings.ContainsAny(token, "\r\n"):
		problems = append(problems, errors.New("sms.http.token: must be a single line"))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	var hc http.Client
	if client != nil {
		hc = *client // shallow copy: same transport, our own redirect policy
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &HTTP{
		url:     u.String(),
		safe:    (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(),
		token:   token,
		client:  &hc,
		Timeout: defaultTimeout,
	}, nil
}

// String describes the provider without its token.
func (h *HTTP) String() string { return "sms.HTTP(" + h.safe + ")" }

// LogValue keeps the token out of structured logs.
func (h *HTTP) LogValue() slog.Value { return slog.StringValue(h.String()) }

type gatewayRequest struct {
	Mobile  string      `json:"mobile"`
	Code    string      `json:"code"`
	Purpose app.Purpose `json:"purpose"`
	Message string      `json:"message"`
}

// Send posts one code. A transport failure, a timeout or a non-2xx answer is app.EUNAVAILABLE.
func (h *HTTP) Send(ctx context.Context, mobile, code string, purpose app.Purpose, message string) error {
	if err := checkPurpose(purpose); err != nil {
		return err
	}
	body, err := json.Marshal(gatewayRequest{Mobile: mobile, Code: code, Purpose: purpose, Message: message})
	if err != nil {
		return fmt.Errorf("sms: encode request: %w", err)
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sms: POST %s: %w", h.safe, err)
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "wecampus")
	resp, err := h.client.Do(req)
	if err != nil {
		return failed(fmt.Errorf("sms: POST %s to %s: %w", h.safe, app.MaskMobile(mobile), unwrapURLError(err)))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))      // for the error only; a short read is fine
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return failed(fmt.Errorf("sms: POST %s to %s: HTTP %s: %s", h.safe, app.MaskMobile(mobile), resp.Status,
			redact(strings.ToValidUTF8(strings.TrimSpace(string(snippet)), "?"), mobile, code)))
	}
	return nil
}
