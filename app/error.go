package app

import (
	"errors"
	"fmt"
)

// Application error codes. Handlers map them to HTTP statuses; only EINTERNAL is logged as a fault.
const (
	EINVALID      = "invalid"      // the caller sent something wrong (400)
	EUNAUTHORIZED = "unauthorized" // authentication failed: bad ticket, bad OAuth code (401)
	EFORBIDDEN    = "forbidden"    // authenticated but not allowed (403)
	ENOTFOUND     = "not_found"    // no such binding / member (404)
	ECONFLICT     = "conflict"     // the state does not allow it: number or mobile held elsewhere (409)
	EEXPIRED      = "expired"      // a flow step, tfa code or SMS code ran out of time (410/400)
	ETOOMANY      = "too_many"     // a rate limit was hit (429)
	EUNAVAILABLE  = "unavailable"  // a dependency (WeCom, CAS, SMS) is down; retry later (503)
	EINTERNAL     = "internal"     // a bug or an unexpected failure (500)
)

// Error is an application error: Code is machine-readable, Message is the Chinese text shown to
// members. Err, when set, is the underlying cause (logged, never shown).
type Error struct {
	Code    string
	Message string
	Err     error
}

// Error returns "app: <code>: <message>", followed by the cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("app: %s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("app: %s: %s", e.Code, e.Message)
}

// Unwrap returns the cause, so that errors.Is and errors.As see through an *Error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with code and message whose cause is err.
func Wrap(code string, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain; for any other error EUNAVAILABLE
// when it is a dependency failure worth retrying later (WeComTemporary: busy, a frequency or
// concurrency limit, an unknown outcome), else EINTERNAL; and "" for nil. Stores report a
// database they cannot reach as an *Error with EUNAVAILABLE, so every such failure maps to 503
// wherever it surfaces.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if WeComTemporary(err) {
		return EUNAVAILABLE
	}
	return EINTERNAL
}

// ErrorMessage returns the member-facing message of err; anything that is not an *Error gets a
// generic message so internals never reach a page.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	switch {
	case errors.As(err, &e) && e.Code != EINTERNAL:
		return e.Message
	case e == nil && WeComTemporary(err):
		return msgWeComBusy
	}
	return "系统内部错误，请稍后再试。"
}

// msgWeComBusy is the message of a WeCom failure worth retrying later.
const msgWeComBusy = "企业微信系统繁忙，请稍后再试。"
