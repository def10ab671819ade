package handlers

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecampus/wecampus/app"
)

// fakeBacklog counts the reads of a backlogCollector and answers them with b or err.
type fakeBacklog struct {
	reads atomic.Int32
	b     app.Backlog
	err   error
	// deadline is how far ahead the context deadline of the last read was.
	deadline time.Duration
}

func (f *fakeBacklog) read(ctx context.Context) (app.Backlog, error) {
	f.reads.Add(1)
	if d, ok := ctx.Deadline(); ok {
		f.deadline = time.Until(d)
	}
	time.Sleep(10 * time.Millisecond) // long enough for concurrent scrapes to pile up
	return f.b, f.err
}

type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestBacklogCollector(f *fakeBacklog) (*backlogCollector, *manualClock) {
	clk := &manualClock{t: time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)}
	c := newBacklogCollector(f.read, slog.New(slog.DiscardHandler))
	c.now = clk.now
	return c, clk
}

// TestBacklogCollector: the gauges and their ages; twenty concurrent scrapes read the database
// once; the next read comes after backlogTTL, with a deadline of backlogTimeout.
func TestBacklogCollector(t *testing.T) {
	at := time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)
	f := &fakeBacklog{b: app.Backlog{OutboxPending: 3, OutboxOldest: at.Add(-90 * time.Second),
		IntentsOpen: 1, IntentOldest: at.Add(-700 * time.Second), At: at}}
	c, clk := newTestBacklogCollector(f)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.reads.Load(); n != 1 {
		t.Errorf("20 concurrent scrapes read the backlog %d times, want 1", n)
	}
	if f.deadline <= 0 || f.deadline > backlogTimeout {
		t.Errorf("read deadline %v ahead, want at most %v", f.deadline, backlogTimeout)
	}
	wantGauges(t, reg, map[string]float64{
		"wecampus_database_up":                   1,
		"wecampus_outbox_pending":                3,
		"wecampus_outbox_oldest_pending_seconds": 90,
		"wecampus_intents_open":                  1,
		"wecampus_intent_oldest_open_seconds":    700,
	})
	clk.advance(backlogTTL - time.Second)
	if _, err := reg.Gather(); err != nil || f.reads.Load() != 1 {
		t.Errorf("within the TTL: %d reads, %v", f.reads.Load(), err)
	}
	clk.advance(time.Second)
	if _, err := reg.Gather(); err != nil || f.reads.Load() != 2 {
		t.Errorf("after the TTL: %d reads, %v", f.reads.Load(), err)
	}
}

// TestBacklogCollectorDatabaseDown: a failed read reports wecampus_database_up 0 and leaves the
// backlog gauges out (stale numbers would hide the outage); the failure is cached as well.
func TestBacklogCollectorDatabaseDown(t *testing.T) {
	f := &fakeBacklog{err: errors.New("dial tcp: connection refused")}
	c, clk := newTestBacklogCollector(f)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	for range 3 {
		wantGauges(t, reg, map[string]float64{"wecampus_database_up": 0})
	}
	if n := f.reads.Load(); n != 1 {
		t.Errorf("3 scrapes of a failing database read it %d times, want 1", n)
	}
	f.err = nil
	clk.advance(backlogTTL)
	wantGauges(t, reg, map[string]float64{
		"wecampus_database_up":                   1,
		"wecampus_outbox_pending":                0,
		"wecampus_outbox_oldest_pending_seconds": 0,
		"wecampus_intents_open":                  0,
		"wecampus_intent_oldest_open_seconds":    0,
	})
}

// wantGauges gathers reg and fails unless its unlabelled gauges are exactly want.
func wantGauges(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("gauges:\n got  %v\n want %v", got, want)
	}
}
