package sms

import (
	"context"
	"log/slog"
	"sync"

	"github.com/wecampus/wecampus/app"
)

// maxRemembered bounds the memory of Log; the demo needs a handful of numbers.
const maxRemembered = 10000

// Log is an app.SMS that sends nothing: it logs the code (in clear, which is its purpose; the
// mobile masked) and remembers the last code per mobile for the demo console and tests.
type Log struct {
	log  *slog.Logger
	mu   sync.Mutex
	last map[string]string
}

var _ app.SMS = (*Log)(nil)

// NewLog returns a Log provider writing to log (nil means slog.Default()).
func NewLog(log *slog.Logger) *Log {
	if log == nil {
		log = slog.Default()
	}
	return &Log{log: log, last: map[string]string{}}
}

// Send logs the code and remembers it as the last code of mobile.
func (l *Log) Send(ctx context.Context, mobile, code string, purpose app.Purpose, message string) error {
	if err := checkPurpose(purpose); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return failed(err)
	}
	l.mu.Lock()
	if _, ok := l.last[mobile]; !ok && len(l.last) >= maxRemembered {
		for k := range l.last { // forget an arbitrary number to stay bounded
			delete(l.last, k)
			break
		}
	}
	l.last[mobile] = code
	l.mu.Unlock()
	l.log.InfoContext(ctx, "SMS code (sms.provider=log: not sent)", "mobile", app.MaskMobile(mobile), "purpose", string(purpose), "code", code)
	return nil
}

// Last returns the last code sent to mobile.
func (l *Log) Last(mobile string) (code string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	code, ok = l.last[mobile]
	return code, ok
}
