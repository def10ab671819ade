package app

import (
	"strings"
	"unicode/utf8"
)

// MaskMobile hides the middle of a mobile number: 13800000000 -> 138****0000.
func MaskMobile(m string) string {
	if len(m) < 7 {
		if m == "" {
			return ""
		}
		return "****"
	}
	return m[:3] + "****" + m[len(m)-4:]
}

// MaskName keeps the first character of a name: 张三丰 -> 张**.
func MaskName(n string) string {
	if n == "" {
		return ""
	}
	r, size := utf8.DecodeRuneInString(n)
	return string(r) + strings.Repeat("*", max(1, utf8.RuneCountInString(n[size:])))
}
