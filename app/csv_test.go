package app_test

import (
	"testing"

	"github.com/wecampus/wecampus/app"
)

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")",
		"+86138":                   "'+86138",
		"-1+1":                     "'-1+1",
		"@SUM(A1)":                 "'@SUM(A1)",
		"\tx":                      "'\tx",
		"\rx":                      "'\rx",
		"张三":                       "张三",
		"2021123456":               "2021123456",
		"":                         "",
		"a=b":                      "a=b",
	} {
		if got := app.CSVCell(in); got != want {
			t.Errorf("CSVCell(%q) = %q, want %q", in, got, want)
		}
	}
}
