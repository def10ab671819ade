package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
)

type secretMobile string

func (s secretMobile) LogValue() slog.Value { return slog.StringValue("tel " + string(s)) }

func TestMaskingHandler(t *testing.T) {
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want []string // substrings of the JSON line
		bad  []string // substrings that must not appear
	}{
		{
			name: "Message",
			log:  func(l *slog.Logger) { l.Info("sms to 13800001234 sent") },
			want: []string{`"msg":"sms to 138****1234 sent"`},
			bad:  []string{"13800001234"},
		},
		{
			name: "StringAttr",
			log:  func(l *slog.Logger) { l.Info("x", "mobile", "13912345678", "n", 13912345678) },
			want: []string{`"mobile":"139****5678"`, `"n":13912345678`}, // only strings are masked
		},
		{
			name: "SeveralInOneValue",
			log:  func(l *slog.Logger) { l.Info("x", "d", "13800000000 -> 15900001111,张三") },
			want: []string{`"d":"138****0000 -> 159****1111,张三"`},
		},
		{
			name: "LongerDigitRunsUntouched",
			log: func(l *slog.Logger) {
				l.Info("x", "msgid", "4561255354251345929", "ten", "1380000000", "twelve", "138000000001",
					"zero", "03800000000", "ts", "1700000000")
			},
			want: []string{`"msgid":"4561255354251345929"`, `"ten":"1380000000"`, `"twelve":"138000000001"`,
				`"zero":"03800000000"`, `"ts":"1700000000"`},
		},
		{
			name: "AdjacentLettersAndPrefix",
			log:  func(l *slog.Logger) { l.Info("x", "a", "tel:+8613800001234;x13800005678y") },
			want: []string{`"a":"tel:+8613800001234;x138****5678y"`}, // +86... is a 13-digit run
		},
		{
			name: "Groups",
			log: func(l *slog.Logger) {
				l.Info("x", slog.Group("req", "mobile", "13800001234", slog.Group("inner", "m", "m=18600001234")))
			},
			want: []string{`"req":{"mobile":"138****1234","inner":{"m":"m=186****1234"}}`},
		},
		{
			name: "WithAttrsAndWithGroup",
			log: func(l *slog.Logger) {
				l.With("who", "17700001234").WithGroup("g").Info("x", "m", "13300001234")
			},
			want: []string{`"who":"177****1234"`, `"g":{"m":"133****1234"}`},
		},
		{
			name: "LogValuer",
			log:  func(l *slog.Logger) { l.Info("x", "s", secretMobile("13800001234")) },
			want: []string{`"s":"tel 138****1234"`},
		},
		{
			name: "Error",
			log:  func(l *slog.Logger) { l.Info("x", "err", errors.New("wecom: mobile 13800001234 existed")) },
			want: []string{`"err":"wecom: mobile 138****1234 existed"`},
		},
		{
			name: "NothingToMask",
			log:  func(l *slog.Logger) { l.Info("plain", "path", "/wecom/callback", "status", 200) },
			want: []string{`"msg":"plain"`, `"path":"/wecom/callback"`, `"status":200`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(app.NewMaskingHandler(slog.NewJSONHandler(&buf, nil)))
			tt.log(l)
			line := buf.String()
			if !json.Valid(buf.Bytes()) {
				t.Fatalf("not one JSON line: %q", line)
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("log line %s\nmissing %s", line, w)
				}
			}
			for _, b := range tt.bad {
				if strings.Contains(line, b) {
					t.Errorf("log line %s\ncontains %s", line, b)
				}
			}
			for _, m := range []string{"13800001234", "13912345678\"", "15900001111", "18600001234", "17700001234", "13300001234", "13800005678"} {
				if strings.Contains(line, `"`+m) || strings.Contains(line, " "+m) || strings.Contains(line, "="+m) {
					t.Errorf("unmasked mobile %s in %s", m, line)
				}
			}
		})
	}
}

func TestMaskingHandlerLevelsAndIdempotence(t *testing.T) {
	var buf bytes.Buffer
	inner := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})
	h := app.NewMaskingHandler(inner)
	if app.NewMaskingHandler(h) != h {
		t.Error("wrapping twice should return the same handler")
	}
	if h.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("Enabled must follow the wrapped handler")
	}
	l := slog.New(h)
	l.Info("13800001234")
	if buf.Len() != 0 {
		t.Errorf("info logged below the level: %q", buf.String())
	}
	l.Warn("w", "m", "13800001234")
	if got := buf.String(); !strings.Contains(got, "m=138****1234") {
		t.Errorf("text handler line %q", got)
	}
}

func TestMaskingHandlerNoAllocWhenClean(t *testing.T) {
	var sink countHandler
	l := slog.New(app.NewMaskingHandler(&sink))
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		l.LogAttrs(ctx, slog.LevelInfo, "http", slog.String("path", "/wecom/callback"), slog.Int("status", 200),
			slog.String("request_id", "abc-123"))
	})
	if allocs != 0 {
		t.Errorf("allocs per clean record = %v, want 0", allocs)
	}
	if sink.n == 0 {
		t.Error("records did not reach the wrapped handler")
	}
}

// countHandler is an enabled handler that only counts records.
type countHandler struct{ n int }

func (h *countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h *countHandler) Handle(context.Context, slog.Record) error { h.n++; return nil }
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h *countHandler) WithGroup(string) slog.Handler             { return h }

// BenchmarkMaskingHandlerClean is the wrapper's cost on a typical access-log record with nothing
// to mask (the wrapped handler only counts).
func BenchmarkMaskingHandlerClean(b *testing.B) {
	var sink countHandler
	h := app.NewMaskingHandler(&sink)
	ctx := context.Background()
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "http request", 0)
	r.AddAttrs(slog.String("method", "POST"), slog.String("path", "/wecom/callback"), slog.Int("status", 200),
		slog.Duration("latency", 1234), slog.String("request_id", "0a1b2c3d4e5f-1a"), slog.String("ip", "192.0.2.1"))
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Handle(ctx, r)
	}
}
