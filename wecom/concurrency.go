package wecom

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wecampus/wecampus/app"
)

// concurrencyCaps are the APIs WeCom allows only so many concurrent calls of, per corp: the join
// verification APIs take 20 each and answer 45033 beyond (WECOM.md §4). The Client never has more
// in flight; a call that finds every slot taken waits for one within its deadline.
var concurrencyCaps = map[string]int{
	"auth/get_tfa_info": 20,
	"user/tfa_succ":     20,
}

// apiLabelNoSlot is the metric errcode label of a call that was not sent: no slot of its API's
// cap came free before its deadline.
const apiLabelNoSlot = "no_slot"

// Semaphore bounds how many calls of one API run at once. The default holds the caps in this
// process; with several replicas pass a fleet-wide one (WithSemaphore), since WeCom counts the
// whole corp.
type Semaphore interface {
	// Acquire takes one of limit slots named key, waiting while all are taken until ctx is done
	// (then it returns an error). release gives the slot back; a fleet-wide implementation lets a
	// slot whose holder died go after lease.
	Acquire(ctx context.Context, key string, limit int, lease time.Duration) (release func(), err error)
}

// WithSemaphore holds the concurrency caps in s (default: in this process).
func WithSemaphore(s Semaphore) Option { return func(o *clientOptions) { o.sem = s } }

// localSemaphore is the in-process Semaphore: a buffered channel per key.
type localSemaphore struct {
	mu   sync.Mutex
	sems map[string]chan struct{}
}

func newLocalSemaphore() *localSemaphore { return &localSemaphore{sems: map[string]chan struct{}{}} }

// Acquire implements Semaphore; lease is not needed within one process.
func (l *localSemaphore) Acquire(ctx context.Context, key string, limit int, _ time.Duration) (func(), error) {
	l.mu.Lock()
	sem := l.sems[key]
	if sem == nil {
		sem = make(chan struct{}, limit)
		l.sems[key] = sem
	}
	l.mu.Unlock()
	select {
	case sem <- struct{}{}:
		if err := ctx.Err(); err != nil { // both were ready: a call past its deadline is not sent
			<-sem
			return nil, err
		}
		return sync.OnceFunc(func() { <-sem }), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("all %d slots taken: %w", limit, ctx.Err())
	}
}

// slot takes a slot of op's concurrency cap, if op has one, within ctx (the call's deadline).
// A call that gets none is not sent: it fails like WeCom's own 45033, which the use cases treat
// as temporary (the member is asked to try again shortly).
func (c *Client) slot(ctx context.Context, op string) (release func(), err error) {
	limit := concurrencyCaps[op]
	if limit == 0 {
		return func() {}, nil
	}
	release, err = c.sem.Acquire(ctx, "wecom/"+op, limit, c.cfg.Timeout+time.Second)
	if err != nil {
		c.metrics.calls.WithLabelValues(op, apiLabelNoSlot).Inc()
		return nil, &app.WeComError{Op: op, Code: app.WeComConcurrencyLimit,
			Msg: fmt.Sprintf("not sent: no free slot of the %d concurrent calls WeCom allows within the deadline (%v)", limit, err)}
	}
	return release, nil
}
