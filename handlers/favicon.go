package handlers

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
)

// faviconMaxAge is how long browsers and proxies may keep the icon (one week): it never changes
// within a release.
const faviconMaxAge = 7 * 24 * 3600

var (
	faviconOnce sync.Once
	faviconICO  []byte
)

// favicon is the site icon, drawn once: a 32×32 green disc with a white centre, as an ICO file
// holding one PNG image (every browser that asks for /favicon.ico reads that).
func favicon() []byte {
	faviconOnce.Do(func() {
		const n = 32
		img := image.NewNRGBA(image.Rect(0, 0, n, n))
		green := color.NRGBA{R: 0x0a, G: 0x7c, B: 0x3e, A: 0xff}
		for y := range n {
			for x := range n {
				dx, dy := 2*x-n+1, 2*y-n+1 // twice the distance from the centre
				switch d := dx*dx + dy*dy; {
				case d <= 10*10:
					img.Set(x, y, color.White)
				case d <= n*n:
					img.Set(x, y, green)
				}
			}
		}
		var p bytes.Buffer
		_ = png.Encode(&p, img) // cannot fail on an in-memory image
		var ico bytes.Buffer
		// ICONDIR (reserved, type 1 = icon, one image), then its ICONDIRENTRY: width and height
		// 32, no palette, 1 plane, 32 bits per pixel, the PNG's size and offset (6 + 16).
		_ = binary.Write(&ico, binary.LittleEndian, []uint16{0, 1, 1})
		ico.Write([]byte{n, n, 0, 0})
		_ = binary.Write(&ico, binary.LittleEndian, []uint16{1, 32})
		_ = binary.Write(&ico, binary.LittleEndian, []uint32{uint32(p.Len()), 22})
		ico.Write(p.Bytes())
		faviconICO = ico.Bytes()
	})
	return faviconICO
}

// handleFavicon answers GET|HEAD /favicon.ico with the icon, cacheable, so that browsers stop
// getting the 404 page for it.
func (s *Server) handleFavicon(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(faviconMaxAge))
	h.Set("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "image/x-icon", favicon())
}
