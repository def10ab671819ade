package app_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wecampus/wecampus/app"
)

func TestMaskNumber(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"2021123456", "20******56"},
		{"20211234", "20****34"},
		{"12345", "1***5"},
		{"1234", "1**4"},
		{"abc", "a**"},
		{"ab", "a*"},
		{"a", "*"},
		{"", ""},
		{"张三丰学号", "张***号"},
	} {
		got := app.MaskNumber(tc.in)
		if got != tc.want {
			t.Errorf("MaskNumber(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if shown := utf8.RuneCountInString(got) - strings.Count(got, "*"); 2*shown > utf8.RuneCountInString(tc.in) {
			t.Errorf("MaskNumber(%q) = %q shows more than half", tc.in, got)
		}
	}
}

func TestMaskPair(t *testing.T) {
	for _, tc := range []struct{ a, b, wantA, wantB string }{
		{"2021123401", "2022123401", "20*1****01", "20*2****01"},
		{"2021123456", "2021999901", "20******56", "20******01"},
		{"2021123401", "2021123401", "20******01", "20******01"},
		{"20211234", "20221234", "20*1***4", "20*2***4"},
		{"1234", "1334", "12**", "13**"},
	} {
		ga, gb := app.MaskPair(tc.a, tc.b)
		if ga != tc.wantA || gb != tc.wantB {
			t.Errorf("MaskPair(%q, %q) = %q, %q; want %q, %q", tc.a, tc.b, ga, gb, tc.wantA, tc.wantB)
		}
		if tc.a != tc.b && ga == gb {
			t.Errorf("MaskPair(%q, %q) = %q twice: not told apart", tc.a, tc.b, ga)
		}
		for _, p := range [][2]string{{tc.a, ga}, {tc.b, gb}} {
			if shown := len(p[1]) - strings.Count(p[1], "*"); 2*shown > len(p[0]) {
				t.Errorf("MaskPair shows more than half of %q: %q", p[0], p[1])
			}
		}
	}
}
