package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerrors "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	tcsms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/sms/v20210111"

	"github.com/wecampus/wecampus/app"
)

const (
	tencentEndpoint = "sms.tencentcloudapi.com"
	tencentRegion   = "ap-guangzhou"
	maxSDKBody      = 1 << 20
)

// TencentConfig configures the Tencent Cloud SMS provider.
type TencentConfig struct {
	SecretID   string // CAM API key id
	SecretKey  string // CAM API key secret; never logged
	Region     string // default ap-guangzhou
	SDKAppID   string // SMS application id (SmsSdkAppId), e.g. 1400006666
	SignName   string // approved signature, e.g. 某某大学
	TemplateID string // approved template with two parameters: {1} the code, {2} minutes valid
	// Endpoint overrides the API host (default sms.tencentcloudapi.com over https); a value with a
	// scheme, e.g. http://127.0.0.1:8080, also sets the scheme (for tests and simulators).
	Endpoint string
	// Minutes is the second template parameter, how long a code stays valid (default 5).
	Minutes int
	// Timeout bounds one send (default 5s).
	Timeout time.Duration
}

// TencentCloud is an app.SMS that sends codes with Tencent Cloud SMS SendSms (API 2021-01-11),
// https://cloud.tencent.com/document/api/382/55981, through the official Go SDK.
type TencentCloud struct {
	client   *tcsms.Client
	appID    string
	sign     string
	template string
	minutes  string
	timeout  time.Duration
}

var _ app.SMS = (*TencentCloud)(nil)

// NewTencentCloud checks cfg and builds the SDK client. Errors name the missing field.
func NewTencentCloud(cfg TencentConfig) (*TencentCloud, error) {
	var missing []error
	for _, f := range []struct{ name, value string }{
		{"secret_id", cfg.SecretID}, {"secret_key", cfg.SecretKey}, {"sdk_app_id", cfg.SDKAppID},
		{"sign_name", cfg.SignName}, {"template_id", cfg.TemplateID},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, fmt.Errorf("sms.tencentcloud.%s: required when sms.provider is tencentcloud", f.name))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return nil, err
	}
	t := &TencentCloud{
		appID:    cfg.SDKAppID,
		sign:     cfg.SignName,
		template: cfg.TemplateID,
		minutes:  fmt.Sprint(cfg.Minutes),
		timeout:  cfg.Timeout,
	}
	if cfg.Minutes <= 0 {
		t.minutes = "5"
	}
	if t.timeout <= 0 {
		t.timeout = defaultTimeout
	}
	region := cfg.Region
	if region == "" {
		region = tencentRegion
	}

	prof := profile.NewClientProfile()
	prof.HttpProfile.Endpoint = tencentEndpoint
	prof.HttpProfile.Scheme = "HTTPS"
	// The SDK's own deadline is whole seconds; Send also enforces t.timeout through its context.
	prof.HttpProfile.ReqTimeout = int(math.Ceil(t.timeout.Seconds()))
	prof.Debug = false // debug dumps requests, codes and mobiles included, with the log package
	if ep := strings.TrimSpace(cfg.Endpoint); ep != "" {
		if strings.Contains(ep, "://") {
			u, err := url.Parse(ep)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("sms.tencentcloud.endpoint: want a host or an http(s) URL, got %q", ep)
			}
			prof.HttpProfile.Scheme = strings.ToUpper(u.Scheme)
			ep = u.Host
		} else if strings.ContainsAny(ep, "/ ") {
			return nil, fmt.Errorf("sms.tencentcloud.endpoint: want a host such as sms.tencentcloudapi.com or an http(s) URL, got %q", ep)
		}
		prof.HttpProfile.Endpoint = ep
	}

	// The SDK's Client.Init calls log.SetFlags on the standard logger; put the flags back.
	flags := log.Flags()
	client, err := tcsms.NewClient(common.NewCredential(cfg.SecretID, cfg.SecretKey), region, prof)
	log.SetFlags(flags)
	if err != nil {
		return nil, fmt.Errorf("sms.tencentcloud: %w", err)
	}
	client.WithHttpTransport(limitedTransport{base: http.DefaultTransport})
	t.client = client
	return t, nil
}

// String describes the provider without its credentials.
func (t *TencentCloud) String() string { return "sms.TencentCloud(" + t.appID + ")" }

// Send sends one code to a mainland mobile with the template parameters [code, minutes]. A
// transport failure, a timeout, an API error or a SendStatus other than "Ok" is an error:
// app.ETOOMANY for Tencent's per-number frequency limits, app.EINVALID for a number it refuses,
// app.EUNAVAILABLE otherwise.
//
// The SDK version served here (v1.0.162) takes no context, so the call runs in a goroutine that
// the SDK's own timeout bounds; Send returns when ctx ends even if that goroutine is still waiting.
func (t *TencentCloud) Send(ctx context.Context, mobile, code string, purpose app.Purpose, message string) error {
	if err := checkPurpose(purpose); err != nil {
		return err
	}
	req := tcsms.NewSendSmsRequest()
	req.PhoneNumberSet = []*string{ptr("+86" + mobile)}
	req.SmsSdkAppId = ptr(t.appID)
	req.SignName = ptr(t.sign)
	req.TemplateId = ptr(t.template)
	req.TemplateParamSet = []*string{ptr(code), ptr(t.minutes)}
	req.SessionContext = ptr(string(purpose))

	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	type result struct {
		resp *tcsms.SendSmsResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := t.client.SendSms(req)
		done <- result{resp, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return failed(fmt.Errorf("tencentcloud sms: SendSms to %s: outcome unknown: %w", app.MaskMobile(mobile), ctx.Err()))
	}
	if r.err != nil {
		return failed(fmt.Errorf("tencentcloud sms: SendSms to %s: %s", app.MaskMobile(mobile), sdkError(r.err, mobile, code)))
	}
	if r.resp == nil || r.resp.Response == nil || len(r.resp.Response.SendStatusSet) == 0 || r.resp.Response.SendStatusSet[0] == nil {
		return failed(fmt.Errorf("tencentcloud sms: SendSms to %s: no SendStatus in the answer", app.MaskMobile(mobile)))
	}
	st := r.resp.Response.SendStatusSet[0]
	stCode, stMsg := deref(st.Code), deref(st.Message)
	if stCode == "Ok" {
		return nil
	}
	err := fmt.Errorf("tencentcloud sms: SendSms to %s: %s: %s (request %s)", app.MaskMobile(mobile), stCode,
		redact(stMsg, mobile, code), deref(r.resp.Response.RequestId))
	// Error codes: https://cloud.tencent.com/document/product/382/49316
	switch stCode {
	case "LimitExceeded.PhoneNumberThirtySecondLimit", "LimitExceeded.PhoneNumberOneHourLimit",
		"LimitExceeded.PhoneNumberDailyLimit", "LimitExceeded.PhoneNumberSameContentDailyLimit",
		"LimitExceeded.DeliveryFrequencyLimit":
		return app.Wrap(app.ETOOMANY, err, "该手机号接收短信过于频繁,请稍后再试。")
	case "InvalidParameterValue.IncorrectPhoneNumber", "FailedOperation.PhoneNumberInBlacklist":
		return app.Wrap(app.EINVALID, err, "该手机号无法接收短信,请检查号码是否正确。")
	}
	return failed(err)
}

// sdkError describes an SDK error without the response bodies some of them quote.
func sdkError(err error, mobile, code string) string {
	var se *tcerrors.TencentCloudSDKError
	if !errors.As(err, &se) {
		return redact(err.Error(), mobile, code)
	}
	switch se.Code {
	case "ClientError.HttpStatusCodeError", "ClientError.ParseJsonError", "ClientError.IOError":
		return se.Code // their message embeds the raw response
	}
	return fmt.Sprintf("%s: %s (request %s)", se.Code, redact(se.Message, mobile, code), se.RequestId)
}

// limitedTransport caps the response bodies the SDK reads whole into memory.
type limitedTransport struct{ base http.RoundTripper }

func (l limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, maxSDKBody), Closer: resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}

func ptr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
