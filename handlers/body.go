package handlers

import (
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// maxFormBytes bounds the body of a member POST (CONTRACT §6). The largest member form is a few
// hundred bytes; the callback routes have their own limit (Config.MaxBodyBytes).
const maxFormBytes = 16 << 10

// formBody admits the body of a member POST and parses it once, into the request's PostForm,
// which every later reader reuses (gorilla/csrf's PostFormValue, gin's PostForm): neither then
// parses the body again, and a multipart body is never parsed, so nothing is written to disk.
//
// Only application/x-www-form-urlencoded (a charset parameter of utf-8 allowed) is accepted:
// another type gets 415. A body over maxFormBytes gets 413, by its Content-Length before a byte
// is read, or, without one (chunked), as soon as the reader passes the limit. It answers and
// returns false when the request is refused.
func (s *Server) formBody(c *gin.Context) bool {
	r := c.Request
	if !isFormType(r.Header.Get("Content-Type")) {
		s.renderError(c, http.StatusUnsupportedMediaType, "提交格式不支持", "本次提交的格式无法受理。请返回上一页，在页面上重新填写并提交。")
		return false
	}
	if r.ContentLength > maxFormBytes {
		s.bodyTooLarge(c)
		return false
	}
	r.Body = http.MaxBytesReader(c.Writer, r.Body, maxFormBytes)
	// A malformed field is left out of PostForm, as the handlers always had it; only an
	// oversized body is refused here.
	var tooLarge *http.MaxBytesError
	if err := r.ParseForm(); errors.As(err, &tooLarge) {
		s.bodyTooLarge(c)
		return false
	}
	return true
}

func (s *Server) bodyTooLarge(c *gin.Context) {
	s.renderError(c, http.StatusRequestEntityTooLarge, "提交内容过大", "本次提交的内容超出了允许的大小。请返回上一页，在页面上重新填写并提交。")
}

// isFormType reports whether a Content-Type is application/x-www-form-urlencoded with no
// parameter other than charset=utf-8.
func isFormType(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}
