package demo

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/wecampus/wecampus/app"
)

// CodeLog is an SMS provider that keeps the codes it "sent": sms.Log.
type CodeLog interface {
	app.SMS
	// Last returns the last code sent to mobile.
	Last(mobile string) (code string, ok bool)
}

// maxSends bounds the list of recent sends the console shows.
const maxSends = 50

// SMSRecorder wraps the log SMS provider and remembers which mobiles got a code (newest first),
// so the console can list the codes it would otherwise only find in the log.
type SMSRecorder struct {
	next CodeLog

	mu    sync.Mutex
	sends []Send
}

// Send is the latest code sent to a mobile through an SMSRecorder; the code itself stays in
// the provider.
type Send struct {
	Mobile  string
	Purpose app.Purpose
	At      time.Time
	Count   int // codes sent to the mobile so far, of every purpose
}

var _ CodeLog = (*SMSRecorder)(nil)

// NewSMSRecorder returns a recorder in front of next.
func NewSMSRecorder(next CodeLog) *SMSRecorder { return &SMSRecorder{next: next} }

// Send passes the code on to the provider and records the send when it succeeded.
func (r *SMSRecorder) Send(ctx context.Context, mobile, code string, purpose app.Purpose, message string) error {
	if err := r.next.Send(ctx, mobile, code, purpose, message); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 1
	r.sends = slices.DeleteFunc(r.sends, func(s Send) bool {
		if s.Mobile == mobile {
			n += s.Count
		}
		return s.Mobile == mobile
	})
	r.sends = slices.Insert(r.sends, 0, Send{Mobile: mobile, Purpose: purpose, At: time.Now(), Count: n})
	if len(r.sends) > maxSends {
		r.sends = r.sends[:maxSends]
	}
	return nil
}

// Last returns the last code sent to mobile, from the provider.
func (r *SMSRecorder) Last(mobile string) (string, bool) { return r.next.Last(mobile) }

// Sends returns the most recent send of each mobile, newest first.
func (r *SMSRecorder) Sends() []Send {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sends)
}
