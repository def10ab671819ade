package handlers

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/csrf"

	"github.com/wecampus/wecampus/internal/keys"
)

// csrfFieldName is the hidden input of every form.
const csrfFieldName = "csrf_token"

type ginContextKey struct{}

// csrfMiddleware adapts gorilla/csrf to gin: a token in a cookie, checked against the hidden
// input of every POST; a POST without a valid one gets the 403 page.
func (s *Server) csrfMiddleware() gin.HandlerFunc {
	var trusted []string
	if u, err := url.Parse(s.cfg.BaseURL); err == nil && u.Host != "" {
		trusted = append(trusted, u.Host) // the public origin behind a TLS-terminating proxy
	}
	protect := csrf.Protect(keys.Derive(s.cfg.SessionSecret, keys.CSRF),
		csrf.CookieName(s.guard.singleCookie("wecampus_csrf")),
		csrf.FieldName(csrfFieldName),
		csrf.Path("/"),
		csrf.HttpOnly(true),
		csrf.Secure(s.guard.https),
		csrf.SameSite(csrf.SameSiteLaxMode),
		csrf.MaxAge(int(flowTTL.Seconds())*4),
		csrf.TrustedOrigins(trusted),
		csrf.ErrorHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := r.Context().Value(ginContextKey{}).(*gin.Context)
			if c == nil {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			s.log.Warn("csrf check failed", "path", r.URL.Path, "reason", csrf.FailureReason(r), "request_id", RequestID(r.Context()))
			s.renderMessage(c, http.StatusForbidden, restartPage("页面已失效",
				"为保护你的账号安全，本次提交未被受理（页面已过期或不是从本页面提交）。请重新开始。", c.Request.URL.Path))
		})),
	)
	return func(c *gin.Context) {
		r := c.Request.WithContext(context.WithValue(c.Request.Context(), ginContextKey{}, c))
		if r.TLS == nil {
			// TLS ends at the proxy: gorilla/csrf's Referer check is for direct TLS only; the
			// Origin check still applies, with the public origin trusted.
			r = csrf.PlaintextHTTPRequest(r)
		}
		passed := false
		protect(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			passed = true
			c.Request = r
			c.Next()
		})).ServeHTTP(c.Writer, r)
		if !passed {
			c.Abort()
		}
	}
}

// csrfToken returns the token for the forms of the current page.
func csrfToken(c *gin.Context) string { return csrf.Token(c.Request) }
