package app

import (
	"strings"
	"unicode/utf8"
)

// MaskMobile hides the middle of a mobile number: 13800000000 -> 138****0000. Anything shorter
// than a mobile is hidden whole.
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

// MaskNumber hides the middle of a school number or userid, never showing more than half of its
// characters: 2021123456 -> 20******56, 1234 -> 1**4, abc -> a**.
func MaskNumber(n string) string {
	return maskKeep(n, nil)
}

// MaskPair masks two numbers so that they can be told apart: when MaskNumber would show both
// the same (2021123401 and 2022123401 -> 20******01 twice), each also shows the first
// character where they differ, still never more than half of it.
func MaskPair(a, b string) (string, string) {
	ma, mb := MaskNumber(a), MaskNumber(b)
	if ma != mb || a == b {
		return ma, mb
	}
	ra, rb := []rune(a), []rune(b)
	for i := range ra {
		if ra[i] != rb[i] {
			return maskKeep(a, &i), maskKeep(b, &i)
		}
	}
	return ma, mb
}

// maskKeep shows a prefix and a suffix of n (together at most half of it, rounded down) and, when
// extra is set, the character at that index in place of one suffix character if needed.
func maskKeep(n string, extra *int) string {
	r := []rune(n)
	show := len(r) / 2
	head := min(2, (show+1)/2)
	tail := min(2, show-head)
	if extra != nil && *extra >= head && *extra < len(r)-tail && tail > 0 && head+tail == show {
		tail-- // make room for the distinguishing character
	}
	var sb strings.Builder
	for i, c := range r {
		keep := i < head || i >= len(r)-tail || (extra != nil && i == *extra)
		if keep {
			sb.WriteRune(c)
		} else {
			sb.WriteByte('*')
		}
	}
	return sb.String()
}
