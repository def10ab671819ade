// Package sms holds the providers of app.SMS, chosen by sms.provider in config.yaml:
//
//   - Log ("log"): writes the code to the log and remembers it; for `wecampus demo` and development.
//   - HTTP ("http"): the school's own SMS gateway, CONTRACT §4.
//   - TencentCloud ("tencentcloud"): Tencent Cloud SMS SendSms (API 2021-01-11) through the official
//     Go SDK.
//
// Every provider bounds each send with a deadline and never logs a credential; mobiles are masked
// in logs and errors.
//
// It is an outbound adapter, a top-level package beside wecom, store and cas: it only sends, so it
// does not import gin or handlers; package main picks the provider and hands it to app.Service.
package sms

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/wecampus/wecampus/app"
)

// msgFailed is shown to the member when a send fails.
const msgFailed = "短信发送失败,请稍后再试。"

// Purposes of a code (CONTRACT §4): app's, repeated here for the providers' callers.
const (
	PurposeVerify = app.PurposeVerify
	PurposeUnbind = app.PurposeUnbind
	PurposeRebind = app.PurposeRebind
)

// checkPurpose refuses a purpose outside CONTRACT §4 (a caller's bug, not a member's mistake).
func checkPurpose(purpose app.Purpose) error {
	if purpose.Valid() {
		return nil
	}
	return fmt.Errorf("sms: unknown purpose %q (want verify, unbind or migrate)", purpose)
}

// failed wraps a failed send as app.EUNAVAILABLE.
func failed(err error) error { return app.Wrap(app.EUNAVAILABLE, err, msgFailed) }

// redact removes the mobile and the code from text taken from a provider's answer, so that an
// error can be logged.
func redact(text, mobile, code string) string {
	if mobile != "" {
		text = strings.ReplaceAll(text, mobile, app.MaskMobile(mobile))
	}
	if code != "" {
		text = strings.ReplaceAll(text, code, strings.Repeat("*", len(code)))
	}
	return text
}

// unwrapURLError drops the *url.Error layer, whose text repeats the whole URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
