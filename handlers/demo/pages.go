package demo

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
)

//go:embed templates/*.html
var templateFS embed.FS

// pageNames are the console's pages, each parsed with templates/layout.html.
var pageNames = []string{"console", "reply", "authorize", "notice"}

type pages struct {
	byName map[string]*template.Template
}

func parsePages() (*pages, error) {
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("demo: parse template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// noticeView is the view of templates/notice.html.
type noticeView struct {
	Title, Text string
}

// render writes page name with status; rendering goes to a buffer first so that a template
// failure never leaves a half-written page.
func (c *Console) render(w http.ResponseWriter, status int, name string, v any) {
	var buf bytes.Buffer
	if err := c.pages.byName[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("demo: render page", "page", name, "err", err)
		http.Error(w, "演示控制台页面渲染失败", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the browser went away: nothing left to do
}

func (c *Console) renderNotice(w http.ResponseWriter, status int, title, text string) {
	c.render(w, status, "notice", &noticeView{Title: title, Text: text})
}
