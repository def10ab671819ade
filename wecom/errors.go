package wecom

import (
	"context"
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/wecampus/wecampus/app"
)

// Metric errcode labels of calls whose outcome is unknown.
const (
	apiLabelTimeout   = "timeout"
	apiLabelTransport = "transport"
)

// apiCredentialRE finds credentials in URLs that may hide inside error texts (silenceper and
// net/http put the whole request URL, access_token included, into their errors).
var apiCredentialRE = regexp.MustCompile(`(?i)(access_token|corpsecret)=[^&\s"'\x60]*`)

// apiRedact removes every credential from s: the given secret values wherever they appear, and
// any access_token= or corpsecret= query value.
func apiRedact(s string, secrets ...string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "REDACTED")
		}
	}
	return apiCredentialRE.ReplaceAllString(s, "$1=REDACTED")
}

// apiError is a WeCom errcode answer as an *app.WeComError.
func apiError(op string, code int, msg string, secrets ...string) *app.WeComError {
	return &app.WeComError{Op: op, Code: code, Msg: apiRedact(msg, secrets...)}
}

// apiUnknown turns a transport failure into an *app.WeComError with Unknown set, and returns
// the metric label ("timeout" or "transport"). The request URL is never part of the message.
func apiUnknown(op string, err error, elapsed time.Duration, secrets ...string) (*app.WeComError, string) {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop "Post \"https://…?access_token=…\": "
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return &app.WeComError{Op: op, Unknown: true, Msg: "timeout after " + elapsed.Round(time.Millisecond).String()},
			apiLabelTimeout
	}
	return &app.WeComError{Op: op, Unknown: true, Msg: "transport: " + apiRedact(err.Error(), secrets...)}, apiLabelTransport
}
