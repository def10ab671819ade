package handlers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// halfWidth are the ASCII punctuation marks that Chinese text writes full-width (，：；（）？！).
const halfWidth = ",:;()?!"

// opaque stands for what a text is joined with at run time (a template action, a Go operand):
// inside Chinese text it counts as Chinese.
const opaque = '\uE000'

// chinese reports whether r is a Chinese character or Chinese (full-width) punctuation.
func chinese(r rune) bool {
	return unicode.Is(unicode.Han, r) || (r >= 0x3000 && r <= 0x303F) || (r >= 0xFF00 && r <= 0xFFEF) ||
		strings.ContainsRune("“”‘’", r)
}

var urlRe = regexp.MustCompile(`https?://[\x21-\x7e]+`)

// halfWidthInChinese returns the half-width punctuation marks of s that touch Chinese text, each
// with a little context. Text without Chinese is left alone, and so are URLs, format verbs
// (%s, %d), numbers (1,000 and 12:30) and punctuation followed by a space between Latin words
// ("%s -> %s: %s" in an audit detail); a mark with no space after it ("0102,5") is Chinese
// punctuation written half-width. An opaque rune in s counts as Chinese when s has Chinese.
func halfWidthInChinese(s string) []string {
	rs := []rune(s)
	hasChinese := false
	for _, r := range rs {
		hasChinese = hasChinese || chinese(r)
	}
	if !hasChinese {
		return nil
	}
	inURL := make([]bool, len(rs))
	for _, loc := range urlRe.FindAllStringIndex(s, -1) {
		start := len([]rune(s[:loc[0]]))
		for i := range []rune(s[loc[0]:loc[1]]) {
			inURL[start+i] = true
		}
	}
	at := func(i int) rune {
		if i < 0 || i >= len(rs) {
			return 0
		}
		return rs[i]
	}
	cjk := func(r rune) bool { return chinese(r) || r == opaque }
	var out []string
	for i, r := range rs {
		if !strings.ContainsRune(halfWidth, r) || inURL[i] {
			continue
		}
		prev, next := at(i-1), at(i+1)
		switch {
		case r == ',' && unicode.IsDigit(prev) && thousands(rs[i+1:]):
			continue // 1,000
		case r == ':' && unicode.IsDigit(prev) && unicode.IsDigit(next):
			continue // 12:30
		case cjk(prev) || cjk(next):
		case r != '(' && r != ')' && next != 0 && !unicode.IsSpace(next): // "0102,5", "%s,%d"
		default:
			continue
		}
		lo, hi := max(0, i-8), min(len(rs), i+9)
		out = append(out, strings.ReplaceAll(string(rs[lo:hi]), string(opaque), "…"))
	}
	return out
}

// TestChinesePunctuation sweeps the member pages (templates) and the texts members get (Go string
// literals of app and handlers: page texts, errors, reply texts, SMS texts) for half-width
// punctuation in Chinese text: "发送到 138****0102,5 分钟内有效" reads as "0102,5".
func TestChinesePunctuation(t *testing.T) {
	templates, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range templates {
		b, err := templateFS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range templateTexts(string(b)) {
			for _, bad := range halfWidthInChinese(text) {
				t.Errorf("%s: half-width punctuation in Chinese text: %q", name, bad)
			}
		}
	}
	var files []string
	for _, dir := range []string{".", "../app"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0) // no comments: they are English for developers
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range goTexts(f) {
			for _, bad := range halfWidthInChinese(text.s) {
				t.Errorf("%s: half-width punctuation in Chinese text: %q", fset.Position(text.pos), bad)
			}
		}
	}
}

// templateTexts returns the text a template shows: the text between tags and the values of the
// attributes a member reads (placeholder, alt, title, aria-label), with each template action
// replaced by the opaque rune. <style> blocks are left out.
func templateTexts(src string) []string {
	src = regexp.MustCompile(`(?s)<style>.*?</style>`).ReplaceAllString(src, "")
	src = regexp.MustCompile(`(?s)\{\{.*?\}\}`).ReplaceAllString(src, string(opaque))
	var out []string
	for _, m := range regexp.MustCompile(`(?s)<[^>]*>`).FindAllString(src, -1) {
		for _, a := range regexp.MustCompile(`(?:placeholder|alt|title|aria-label)="([^"]*)"`).FindAllStringSubmatch(m, -1) {
			out = append(out, a[1])
		}
	}
	return append(out, regexp.MustCompile(`(?s)<[^>]*>`).Split(src, -1)...)
}

// thousands reports whether rs starts with three digits and no fourth: the rest of 1,000.
func thousands(rs []rune) bool {
	for i := range 3 {
		if i >= len(rs) || !unicode.IsDigit(rs[i]) {
			return false
		}
	}
	return len(rs) == 3 || !unicode.IsDigit(rs[3])
}

type goText struct {
	pos token.Pos
	s   string
}

// goTexts returns the string literals of f, each concatenation ("验证码已发送到 " + m + "，" + …)
// joined into one text with its other operands as the opaque rune.
func goTexts(f *ast.File) []goText {
	var out []goText
	seen := map[*ast.BasicLit]bool{}
	var join func(e ast.Expr) string
	join = func(e ast.Expr) string {
		switch e := e.(type) {
		case *ast.BinaryExpr:
			if e.Op == token.ADD {
				return join(e.X) + join(e.Y)
			}
		case *ast.ParenExpr:
			return join(e.X)
		case *ast.BasicLit:
			if e.Kind == token.STRING {
				seen[e] = true
				if s, err := strconv.Unquote(e.Value); err == nil {
					return s
				}
			}
		}
		return string(opaque)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if n.Op == token.ADD {
				if s := join(n); strings.ContainsFunc(s, func(r rune) bool { return r != opaque }) {
					out = append(out, goText{n.Pos(), s})
				}
				return false
			}
		case *ast.BasicLit:
			if n.Kind == token.STRING && !seen[n] {
				if s, err := strconv.Unquote(n.Value); err == nil {
					out = append(out, goText{n.Pos(), s})
				}
			}
		}
		return true
	})
	return out
}

// TestHalfWidthInChinese pins what the sweep flags and what it leaves alone.
func TestHalfWidthInChinese(t *testing.T) {
	for s, want := range map[string]int{
		"验证码已发送到 138****0102" + string(opaque) + ",5 分钟内有效":   1,
		"发送到 138****0102,5 分钟内有效":                             1,
		"当前身份:" + string(opaque) + "(" + string(opaque) + ")": 3,
		"不是你?切换账号":                                            1,
		"请点击:https://wecampus.example.edu.cn/bind?a=1":        1,
		"验证码 %s,%d 分钟内有效":                                     1,
		"请点击：https://wecampus.example.edu.cn/bind?a=1,2":      0,
		"换绑 %s -> %s: %s":                                     0,
		"共 1,000 人，12:30 前":                                   0,
		"userid (%s): not found":                              0,
		"验证码已发送到 138****0102，5 分钟内有效。":                        0,
	} {
		if got := halfWidthInChinese(s); len(got) != want {
			t.Errorf("halfWidthInChinese(%q) = %q, want %d marks", s, got, want)
		}
	}
}
