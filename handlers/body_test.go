package handlers_test

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
)

// formLimit is the member POST body limit of CONTRACT §6.
const formLimit = 16 << 10

// postRaw sends body to path with contentType, the browser's cookies and the page's CSRF token
// already in body; length -1 sends it chunked.
func (m *member) postRaw(path, contentType string, body io.Reader, length int64) response {
	m.e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, m.e.srv.URL+path, body)
	if err != nil {
		m.e.t.Fatal(err)
	}
	req.ContentLength = length
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := m.c.Do(req)
	if err != nil {
		m.e.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, body: b}
	m.e.checkPage("POST "+path, r)
	return r
}

// paddedForm is the mobile form with the page's token, padded with an extra field to exactly n
// bytes.
func paddedForm(t *testing.T, token, mobile string, n int) string {
	t.Helper()
	s := url.Values{"csrf_token": {token}, "mobile": {mobile}}.Encode() + "&pad="
	if len(s) > n {
		t.Fatalf("form of %d bytes exceeds %d", len(s), n)
	}
	return s + strings.Repeat("x", n-len(s))
}

// chunked hides a reader's length so that the client sends it chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestFormBodyContentType(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	m := e.loggedIn("2021000001", "张三")
	tok := hiddenValue(m.last.page(), "csrf_token")
	form := url.Values{"csrf_token": {tok}, "mobile": {"13800001234"}}.Encode()
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	_ = w.WriteField("csrf_token", tok)
	_ = w.WriteField("mobile", "13800001234")
	_ = w.Close()

	for ct, body := range map[string]string{
		w.FormDataContentType(): mp.String(),
		"":                      form,
		"text/plain":            form,
		"application/json":      `{"mobile":"13800001234"}`,
		"application/x-www-form-urlencoded; charset=iso-8859-1": form,
		"application/x-www-form-urlencoded; boundary=x":         form,
		"application/x-www-form-urlencoded-x":                   form,
	} {
		r := m.postRaw("/bind/mobile", ct, strings.NewReader(body), int64(len(body)))
		mustStatus(t, "Content-Type "+ct, r, http.StatusUnsupportedMediaType)
		mustContain(t, "Content-Type "+ct, r.page(), "提交格式不支持")
		if _, ok := e.sim.Member("2021000001"); ok {
			t.Fatalf("Content-Type %q: the member was created", ct)
		}
	}
	r := m.postRaw("/bind/mobile", "Application/X-WWW-Form-Urlencoded; Charset=UTF-8", strings.NewReader(form), int64(len(form)))
	mustStatus(t, "form with a charset", r, http.StatusSeeOther) // bound: 303 to the follow page
	if b := e.liveBinding("2021000001"); b == nil || b.Mobile != "13800001234" {
		t.Fatalf("binding: %+v", b)
	}
}

func TestFormBodySize(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	for i, c := range []struct {
		size    int
		chunked bool
		want    int
	}{
		{formLimit, false, http.StatusSeeOther}, // bound: 303 to the follow page
		{formLimit, true, http.StatusSeeOther},
		{formLimit + 1, false, http.StatusRequestEntityTooLarge},
		{formLimit + 1, true, http.StatusRequestEntityTooLarge},
		{10 * formLimit, true, http.StatusRequestEntityTooLarge},
	} {
		number := fmt.Sprintf("2021000%03d", i)
		m := e.loggedIn(number, "张三")
		body := paddedForm(t, hiddenValue(m.last.page(), "csrf_token"), fmt.Sprintf("13800001%03d", i), c.size)
		var r response
		if c.chunked {
			r = m.postRaw("/bind/mobile", "application/x-www-form-urlencoded", chunked{strings.NewReader(body)}, -1)
		} else {
			r = m.postRaw("/bind/mobile", "application/x-www-form-urlencoded", strings.NewReader(body), int64(len(body)))
		}
		what := fmt.Sprintf("body of %d bytes (chunked %v)", c.size, c.chunked)
		mustStatus(t, what, r, c.want)
		if _, bound := e.sim.Member(number); bound != (c.want == http.StatusSeeOther) {
			t.Fatalf("%s: member created %v", what, bound)
		}
		if c.want != http.StatusSeeOther {
			mustContain(t, what, r.page(), "提交内容过大")
		}
	}
}

// generator streams size bytes of a multipart form (the CSRF token, then one file part of 'A's)
// without holding them, and counts what was read.
type generator struct {
	head, tail []byte
	left       int64 // file bytes still to produce
	read       atomic.Int64
}

func newGenerator(boundary, token string, size int64) *generator {
	g := &generator{
		head: []byte("--" + boundary + "\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n" + token +
			"\r\n--" + boundary + "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f.bin\"\r\n" +
			"Content-Type: application/octet-stream\r\n\r\n"),
		tail: []byte("\r\n--" + boundary + "--\r\n"),
	}
	g.left = size - int64(len(g.head)+len(g.tail))
	return g
}

func (g *generator) Read(p []byte) (int, error) {
	n := 0
	switch {
	case len(g.head) > 0:
		n = copy(p, g.head)
		g.head = g.head[n:]
	case g.left > 0:
		n = int(min(int64(len(p)), g.left))
		for i := range p[:n] {
			p[i] = 'A'
		}
		g.left -= int64(n)
	case len(g.tail) > 0:
		n = copy(p, g.tail)
		g.tail = g.tail[n:]
	default:
		return 0, io.EOF
	}
	g.read.Add(int64(n))
	return n, nil
}

func TestHugeMultipartRefusedWithoutTempFiles(t *testing.T) {
	const size = 100 << 20
	e := newEnv(t, withLocalBaseURL())
	m := e.loggedIn("2021000001", "张三")
	tok := hiddenValue(m.last.page(), "csrf_token")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where net/http's multipart parser would spool file parts
	const boundary = "wecampusboundary"
	ct := "multipart/form-data; boundary=" + boundary

	// The premise: net/http's multipart parser spools a large file part to TMPDIR.
	probe := httptest.NewRequest(http.MethodPost, "/", newGenerator(boundary, tok, 2<<20))
	probe.Header.Set("Content-Type", ct)
	if err := probe.ParseMultipartForm(1 << 10); err != nil {
		t.Fatal(err)
	}
	if files, _ := os.ReadDir(tmp); len(files) == 0 {
		t.Fatal("the probe spilled nothing to TMPDIR: the test could not see a spill")
	}
	if err := probe.MultipartForm.RemoveAll(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name        string
		contentType string
		length      int64
		want        int
	}{
		{"multipart", ct, size, http.StatusUnsupportedMediaType},
		{"multipart chunked", ct, -1, http.StatusUnsupportedMediaType},
		{"form", "application/x-www-form-urlencoded", size, http.StatusRequestEntityTooLarge},
		{"form chunked", "application/x-www-form-urlencoded", -1, http.StatusRequestEntityTooLarge},
	} {
		// Over real HTTP: refused quickly.
		g := newGenerator(boundary, tok, size)
		var body io.Reader = g
		if c.length < 0 {
			body = chunked{g}
		}
		start := time.Now()
		r := m.postRaw("/bind/mobile", c.contentType, body, c.length)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: answered after %v", c.name, d)
		}
		mustStatus(t, c.name, r, c.want)
		if n := g.read.Load(); n >= size/2 {
			t.Errorf("%s: the client sent %d of %d bytes before the answer", c.name, n, size)
		}

		// In process: how much of the body the service reads.
		g = newGenerator(boundary, tok, size)
		body = g
		if c.length < 0 {
			body = chunked{g}
		}
		req := httptest.NewRequest(http.MethodPost, "/bind/mobile", body)
		req.ContentLength = c.length
		req.Header.Set("Content-Type", c.contentType)
		for _, ck := range m.c.Jar.Cookies(nil) {
			req.AddCookie(ck)
		}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s in process: status %d, want %d", c.name, rec.Code, c.want)
		}
		limit := int64(0)
		if c.contentType != ct && c.length < 0 {
			limit = formLimit + 1 // the reader stops one byte past the limit
		}
		if n := g.read.Load(); n > limit+4<<10 {
			t.Errorf("%s in process: the service read %d bytes, want at most %d", c.name, n, limit)
		}
	}
	if files, err := os.ReadDir(tmp); err != nil || len(files) != 0 {
		t.Fatalf("TMPDIR after the requests: %v %v", files, err)
	}
	if _, ok := e.sim.Member("2021000001"); ok {
		t.Fatal("a refused body bound the member")
	}
}

func TestCallbackKeepsItsOwnBodyLimit(t *testing.T) {
	e := newEnv(t)
	// A delivery over the member limit but within the callback's own (64 KiB): applied.
	d := e.event(&app.Inbound{MsgType: "event", Event: "enter_agent", FromUser: "zhangsan"})
	d.body = append(bytes.Repeat([]byte(" "), 40<<10), d.body...)
	r := e.post(d)
	mustStatus(t, "40 KiB callback", r, http.StatusOK)
	// Beyond it: 413, as before.
	d = e.event(&app.Inbound{MsgType: "event", Event: "enter_agent", FromUser: "zhangsan"})
	d.body = append(bytes.Repeat([]byte(" "), 70<<10), d.body...)
	mustStatus(t, "70 KiB callback", e.post(d), http.StatusRequestEntityTooLarge)
}
