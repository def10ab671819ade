package handlers

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"

	"github.com/gin-gonic/gin"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages holds the parsed HTML templates. They are parsed once in New, which fails if one is
// missing or broken.
type pages struct {
	error *template.Template
}

func parsePages() (*pages, error) {
	t, err := template.ParseFS(templateFS, "templates/error.html")
	if err != nil {
		return nil, fmt.Errorf("handlers: parse templates: %w", err)
	}
	return &pages{error: t}, nil
}

// errorView is the view of templates/error.html.
type errorView struct {
	Title     string
	Message   string
	RequestID string // shown so that a member can quote it to the help desk
}

// renderError writes a Chinese error page with status.
func (s *Server) renderError(c *gin.Context, status int, title, message string) {
	s.writeErrorPage(c.Writer, RequestID(c.Request.Context()), status, title, message)
}

// writeErrorPage writes a Chinese error page with status that shows the request id. Rendering
// goes to a buffer first so that a template failure never leaves a half-written page.
func (s *Server) writeErrorPage(w http.ResponseWriter, requestID string, status int, title, message string) {
	var buf bytes.Buffer
	v := errorView{Title: title, Message: message, RequestID: requestID}
	if err := s.pages.error.Execute(&buf, v); err != nil {
		s.log.Error("render error page", "err", err, "request_id", v.RequestID)
		w.Header()["Content-Type"] = mimeText
		w.WriteHeader(status)
		_, _ = w.Write([]byte(title + "\n"))
		return
	}
	s.guard.pageHeaders(w.Header(), "")
	w.Header()["Content-Type"] = mimeHTML
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // a write error means the client has gone
}

var mimeHTML = []string{"text/html; charset=utf-8"}

// handleNotFound answers any path without a route.
func (s *Server) handleNotFound(c *gin.Context) {
	s.renderError(c, http.StatusNotFound, "页面不存在", "你访问的页面不存在，请从微校园助手的菜单重新进入。")
}

// handleMethodNotAllowed answers a known path requested with another method; gin has set Allow.
func (s *Server) handleMethodNotAllowed(c *gin.Context) {
	s.renderError(c, http.StatusMethodNotAllowed, "请求方式不支持", "请从微校园助手的菜单重新进入。")
}
