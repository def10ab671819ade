package app

import (
	"context"
	"log/slog"
)

// NewMaskingHandler wraps h so that every mainland mobile number (11 digits starting with 1 that
// are not part of a longer run of digits) in the message and in string attribute values, groups
// included, is logged as 138****0000. Values implementing slog.LogValuer are resolved first, and
// error values are masked through their Error text. Records with nothing to mask reach h
// unchanged and without allocation, so the wrapper is cheap on hot paths such as the access log.
func NewMaskingHandler(h slog.Handler) slog.Handler {
	if m, ok := h.(*maskingHandler); ok {
		return m // already masking
	}
	return &maskingHandler{h: h}
}

type maskingHandler struct {
	h slog.Handler
}

func (m *maskingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return m.h.Enabled(ctx, l)
}

func (m *maskingHandler) Handle(ctx context.Context, r slog.Record) error {
	dirty := hasMobile(r.Message)
	if !dirty {
		r.Attrs(func(a slog.Attr) bool {
			dirty = attrNeedsMask(a)
			return !dirty
		})
	}
	if !dirty {
		return m.h.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, maskMobiles(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(maskAttr(a))
		return true
	})
	return m.h.Handle(ctx, out)
}

func (m *maskingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i] = maskAttr(a)
	}
	return &maskingHandler{h: m.h.WithAttrs(masked)}
}

func (m *maskingHandler) WithGroup(name string) slog.Handler {
	return &maskingHandler{h: m.h.WithGroup(name)}
}

// attrNeedsMask reports whether maskAttr would change a.
func attrNeedsMask(a slog.Attr) bool {
	v := a.Value
	switch v.Kind() {
	case slog.KindString:
		return hasMobile(v.String())
	case slog.KindGroup:
		for _, g := range v.Group() {
			if attrNeedsMask(g) {
				return true
			}
		}
		return false
	case slog.KindLogValuer:
		return true // resolve it once in maskAttr rather than twice
	case slog.KindAny:
		if err, ok := v.Any().(error); ok && err != nil {
			return hasMobile(err.Error())
		}
	}
	return false
}

// maskAttr returns a with every mobile number in its string values masked.
func maskAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); hasMobile(s) {
			return slog.String(a.Key, maskMobiles(s))
		}
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = maskAttr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok && err != nil {
			if s := err.Error(); hasMobile(s) {
				return slog.String(a.Key, maskMobiles(s))
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// maskMobiles masks every mainland mobile number in s (11 digits starting with 1, not part of a
// longer run of digits) as 138****0000. It returns s itself when there is nothing to mask.
func maskMobiles(s string) string {
	i := nextMobile(s, 0)
	if i < 0 {
		return s
	}
	b := []byte(s)
	for ; i >= 0; i = nextMobile(s, i+11) {
		copy(b[i+3:i+7], "****")
	}
	return string(b)
}

func hasMobile(s string) bool { return len(s) >= 11 && nextMobile(s, 0) >= 0 }

// nextMobile returns the index of the first mobile number in s at or after from, or -1. from must
// not be inside a run of digits.
func nextMobile(s string, from int) int {
	run := 0 // length of the digit run ending before i
	for i := from; i < len(s); i++ {
		if s[i]-'0' <= 9 {
			run++
			continue
		}
		if run == 11 && s[i-11] == '1' {
			return i - 11
		}
		run = 0
	}
	if run == 11 && s[len(s)-11] == '1' {
		return len(s) - 11
	}
	return -1
}
