package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// hostCookiePrefix makes a browser refuse the cookie unless it is Secure, host-only and on path
// "/": a sibling subdomain cannot set or shadow it.
const hostCookiePrefix = "__Host-"

// hstsValue is Strict-Transport-Security when base_url is https: a year, this host only (other
// hosts of the campus domain may still be plain http).
const hstsValue = "max-age=31536000"

// browserGuard holds what the member pages send to browsers and check on their requests: the
// cookie names, the exact origin of base_url and the fixed part of the Content-Security-Policy.
type browserGuard struct {
	origin string // base_url's origin as a browser serialises it: scheme://host[:port]
	https  bool

	// single are the cookie names a request may carry at most once (flow, CSRF, …).
	single []string

	// csp is the Content-Security-Policy of every page. It ends with img-src, so that a page
	// showing an image from elsewhere (the join QR code) can append that origin.
	csp string
}

// newBrowserGuard derives the guard from base_url and the origins a page may send the browser
// to: forms post to the service, which may redirect to CAS (login) or WeCom OAuth.
func newBrowserGuard(baseURL string, formTargets ...string) (*browserGuard, error) {
	origin, err := originOf(baseURL)
	if err != nil {
		return nil, err
	}
	g := &browserGuard{origin: origin, https: strings.HasPrefix(origin, "https://")}
	styles, err := styleHashes()
	if err != nil {
		return nil, err
	}
	formAction := []string{"'self'"}
	for _, t := range formTargets {
		if o, err := originOf(t); err == nil && o != origin && !slices.Contains(formAction, o) {
			formAction = append(formAction, o)
		}
	}
	g.csp = "default-src 'none'; style-src " + strings.Join(styles, " ") +
		"; form-action " + strings.Join(formAction, " ") + "; frame-ancestors 'none'; base-uri 'none'; img-src 'self'"
	return g, nil
}

// cookieName is the wire name of a cookie of the service: with the __Host- prefix when base_url
// is https (a Secure cookie on path "/" without Domain, as the prefix requires).
func (g *browserGuard) cookieName(name string) string {
	if g.https {
		return hostCookiePrefix + name
	}
	return name
}

// singleCookie registers the cookie name (as cookieName returns it) that a request may carry at
// most once, and returns it.
func (g *browserGuard) singleCookie(name string) string {
	n := g.cookieName(name)
	g.single = append(g.single, n)
	return n
}

// pageHeaders sets the headers of every HTML answer. imgOrigin, when not "", is one more
// origin the page loads an image from.
func (g *browserGuard) pageHeaders(h http.Header, imgOrigin string) {
	csp := g.csp
	if imgOrigin != "" && imgOrigin != g.origin {
		csp += " " + imgOrigin
	}
	h["Content-Security-Policy"] = []string{csp}
	// OAuth codes and CAS tickets travel in URLs: no Referer ever, and none on the redirects to
	// CAS and WeCom. Pages with forms relax it to same-origin in a <meta> (layout.html): under
	// no-referrer a browser sends "Origin: null" with every POST, which the Origin check refuses.
	h["Referrer-Policy"] = []string{"no-referrer"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["X-Frame-Options"] = []string{"DENY"} // frame-ancestors for browsers without CSP 2
	h["Cache-Control"] = []string{"no-store"}
	if g.https {
		h["Strict-Transport-Security"] = []string{hstsValue}
	}
}

// duplicateCookie returns the first name of g.single that r carries more than once: a second
// cookie of that name was set by someone else (a sibling subdomain, a path-scoped cookie), and
// which of the two the server would read is the browser's choice.
func (g *browserGuard) duplicateCookie(r *http.Request) string {
	if len(r.Header["Cookie"]) == 0 {
		return ""
	}
	seen := make(map[string]bool, len(g.single))
	for _, ck := range r.Cookies() {
		if !slices.Contains(g.single, ck.Name) {
			continue
		}
		if seen[ck.Name] {
			return ck.Name
		}
		seen[ck.Name] = true
	}
	return ""
}

// foreignOrigin reports whether r carries an Origin header that is not exactly base_url's
// origin (scheme, host and port); "null" (sandboxed frames, some redirects) is foreign too.
// A request without Origin is left to the CSRF token.
func (g *browserGuard) foreignOrigin(r *http.Request) bool {
	o, ok := r.Header["Origin"]
	return ok && (len(o) != 1 || o[0] != g.origin)
}

// memberGuard runs first on every route of the member pages, and belongs first on the routes of
// any other HTML form: the page headers, a refusal of duplicated cookies, and for a POST the
// exact Origin and the form body (formBody), all before gorilla/csrf reads the form.
func (s *Server) memberGuard(c *gin.Context) {
	s.guard.pageHeaders(c.Writer.Header(), "")
	if name := s.guard.duplicateCookie(c.Request); name != "" {
		s.log.Warn("request refused: duplicated cookie", "cookie", name, "path", c.Request.URL.Path, "request_id", RequestID(c.Request.Context()))
		c.Abort()
		s.renderMessage(c, http.StatusBadRequest, restartPage("页面已失效",
			"浏览器中存在重复的登录信息，本次请求未被受理。请关闭本页面，清除本网站的浏览数据后重新进入。", c.Request.URL.Path))
		return
	}
	if c.Request.Method != http.MethodPost {
		c.Next()
		return
	}
	if s.guard.foreignOrigin(c.Request) {
		s.log.Warn("request refused: foreign origin", "origin", truncate(c.Request.Header.Get("Origin"), 128), "path", c.Request.URL.Path, "request_id", RequestID(c.Request.Context()))
		c.Abort()
		s.renderMessage(c, http.StatusForbidden, restartPage("页面已失效",
			"为保护你的账号安全，本次提交未被受理（不是从本网站的页面提交）。请重新开始。", c.Request.URL.Path))
		return
	}
	if !s.formBody(c) {
		c.Abort()
		return
	}
	c.Next()
}

// originOf returns the origin of an absolute URL as browsers serialise it in the Origin header:
// lower-case scheme and host, the port only when it is not the scheme's default.
func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("handlers: %q is not an absolute URL", raw)
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	if port == "" || (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		return scheme + "://" + host, nil
	}
	return scheme + "://" + host + ":" + port, nil
}

// styleRe finds the <style> elements of the templates. Their content is static text (no
// template actions), so its hash is the hash of what the browser receives.
var styleRe = regexp.MustCompile(`(?s)<style>(.*?)</style>`)

// styleHashes returns the CSP source ('sha256-…') of every <style> element of the embedded
// templates. Pages carry no style attributes: CSP hashes do not cover them.
func styleHashes() ([]string, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		b, err := templateFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		for _, m := range styleRe.FindAllSubmatch(b, -1) {
			sum := sha256.Sum256(m[1])
			src := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
			if !slices.Contains(out, src) {
				out = append(out, src)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("handlers: no <style> in the templates")
	}
	return out, nil
}

// originOrEmpty is the origin of an absolute URL, or "" for anything else.
func originOrEmpty(raw string) string {
	if raw == "" {
		return ""
	}
	o, err := originOf(raw)
	if err != nil {
		return ""
	}
	return o
}

// truncate cuts s to at most n bytes for a log line.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
