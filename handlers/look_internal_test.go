package handlers

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestFavicon: /favicon.ico is an icon (an ICO file holding one 32×32 PNG), cacheable, so that
// browsers stop getting the 404 page.
func TestFavicon(t *testing.T) {
	gin.SetMode(gin.TestMode)
	s := &Server{}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(method, "/favicon.ico", nil)
		s.handleFavicon(c)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "image/x-icon" ||
			w.Header().Get("Cache-Control") != "public, max-age=604800" {
			t.Fatalf("%s: %d %q", method, w.Code, w.Header())
		}
	}
	ico := favicon()
	var head struct{ Reserved, Type, Count uint16 }
	if err := binary.Read(bytes.NewReader(ico), binary.LittleEndian, &head); err != nil || head.Type != 1 || head.Count != 1 {
		t.Fatalf("ICO header %+v: %v", head, err)
	}
	size, offset := binary.LittleEndian.Uint32(ico[14:]), binary.LittleEndian.Uint32(ico[18:])
	if int(offset+size) != len(ico) {
		t.Fatalf("ICO entry: %d bytes at %d, file %d bytes", size, offset, len(ico))
	}
	img, err := png.Decode(bytes.NewReader(ico[offset:]))
	if err != nil || img.Bounds().Dx() != 32 || img.Bounds().Dy() != 32 {
		t.Fatalf("ICO image: %v %v", img.Bounds(), err)
	}
}

// TestParseHelpContact: the phone number of server.help_contact becomes a tel: link, the rest
// stays text.
func TestParseHelpContact(t *testing.T) {
	for in, want := range map[string]helpContact{
		"信息化管理中心 电话 0471-6576286": {Before: "信息化管理中心 电话 ", Phone: "0471-6576286", Tel: "04716576286"},
		"服务台 400 810 8888（工作日）":   {Before: "服务台 ", Phone: "400 810 8888", After: "（工作日）", Tel: "4008108888"},
		"+86 10 6275 1234":        {Phone: "+86 10 6275 1234", Tel: "+861062751234"},
		"请到网络中心 3 楼 301 室":        {Before: "请到网络中心 3 楼 301 室"},
		"邮箱 help@example.edu.cn":  {Before: "邮箱 help@example.edu.cn"},
	} {
		h := parseHelpContact(in)
		want.Text = in
		if h == nil || *h != want || h.String() != in {
			t.Errorf("parseHelpContact(%q) = %+v, want %+v", in, h, want)
		}
	}
	if parseHelpContact("  ") != nil {
		t.Error("an empty help_contact is not nil")
	}
}
