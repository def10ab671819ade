package app_test

import (
	"testing"

	"github.com/wecampus/wecampus/app"
)

func TestNormalizeMobileCountryCodes(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"+86 138 0000 1234", "13800001234", true},
		{"(+86) 138-0000-1234", "13800001234", true},
		{"8613800001234", "13800001234", true},
		{"0086 13800001234", "13800001234", true},
		{"138 0000 1234", "13800001234", true},
		{"+1 650 253 0000", "", false}, // a US number, not 165 0253 0000
		{"+16502530000", "", false},
		{"+44 7911 123456", "", false},
		{"+0086 13800001234", "", false},
		{"++8613800001234", "", false},
		{"+", "", false},
		{"abcdefghijk", "", false},
		{"1380000123", "", false},
		{"138000012345", "", false},
		{"23800001234", "", false},
		{"", "", false},
	} {
		got, ok := app.NormalizeMobile(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeMobile(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
