package wecom_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// tfaBurst redeems n join-verification codes at once, WeCom answering each after latency, and
// returns each call's error.
func tfaBurst(t *testing.T, f *apiFixture, n int, latency time.Duration) []error {
	t.Helper()
	f.addMember(t, wecomtest.Member{UserID: "zhangsan", Mobile: "13800000001", Status: 4})
	if _, _, err := f.c.TfaInfo(context.Background(), f.sim.IssueTfaCode("zhangsan")); err != nil {
		t.Fatal(err) // the contacts token is cached from here on
	}
	f.sim.SetLatency(latency)
	codes := make([]string, n)
	for i := range codes {
		codes[i] = f.sim.IssueTfaCode("zhangsan")
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = f.c.TfaInfo(context.Background(), codes[i])
		}()
	}
	wg.Wait()
	return errs
}

func TestClientTfaConcurrencyCap(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// 50 at once against a slow WeCom: 20 in flight at most, the rest wait and all succeed.
		f := newAPIFixture(t, nil)
		errs := tfaBurst(t, f, 50, 150*time.Millisecond)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		if got := f.sim.MaxInFlight("auth/get_tfa_info"); got != 20 {
			t.Fatalf("at most %d calls in flight at WeCom, want exactly the cap of 20", got)
		}
	})

	t.Run("ErrNoSlotWithinDeadline", func(t *testing.T) {
		// 20 slow calls hold every slot; 30 more, whose callers give them 200 ms, find none in
		// time: they end at their deadline with a temporary error and are never sent.
		f := newAPIFixture(t, nil)
		f.addMember(t, wecomtest.Member{UserID: "zhangsan", Mobile: "13800000001", Status: 4})
		if _, _, err := f.c.TfaInfo(context.Background(), f.sim.IssueTfaCode("zhangsan")); err != nil {
			t.Fatal(err)
		}
		f.sim.SetLatency(time.Second)
		var wg sync.WaitGroup
		holders := make([]error, 20)
		for i := range holders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, holders[i] = f.c.TfaInfo(context.Background(), f.sim.IssueTfaCode("zhangsan"))
			}()
		}
		for f.sim.MaxInFlight("auth/get_tfa_info") < 20 {
			time.Sleep(5 * time.Millisecond)
		}
		waiters, took := make([]error, 30), make([]time.Duration, 30)
		for i := range waiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				start := time.Now()
				_, _, waiters[i] = f.c.TfaInfo(ctx, f.sim.IssueTfaCode("zhangsan"))
				took[i] = time.Since(start)
			}()
		}
		wg.Wait()
		for i, err := range holders {
			if err != nil {
				t.Fatalf("slot holder %d: %v", i, err)
			}
		}
		for i, err := range waiters {
			if app.WeComCode(err) != app.WeComConcurrencyLimit || !app.WeComTemporary(err) {
				t.Fatalf("waiter %d: %v, want a temporary 45033 (not sent)", i, err)
			}
			if took[i] > 400*time.Millisecond {
				t.Fatalf("waiter %d took %v, past its 200 ms deadline", i, took[i])
			}
		}
		if got := f.sim.MaxInFlight("auth/get_tfa_info"); got != 20 {
			t.Fatalf("%d calls in flight at WeCom, want 20", got)
		}
		if n := f.sim.CallCount("auth/get_tfa_info"); n != 1+20 {
			t.Fatalf("WeCom received %d calls, want only the 20 slot holders (and the first)", n)
		}
		if got := apiCounter(t, f.reg, "auth/get_tfa_info", "no_slot"); got != 30 {
			t.Fatalf("no_slot counter = %v, want 30", got)
		}
	})

	t.Run("WithSemaphore", func(t *testing.T) {
		sem := &recordingSemaphore{}
		f := newAPIFixture(t, nil, wecom.WithSemaphore(sem))
		f.addMember(t, wecomtest.Member{UserID: "lisi", Mobile: "13800000002", Status: 4})
		userID, tfaCode, err := f.c.TfaInfo(context.Background(), f.sim.IssueTfaCode("lisi"))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.c.TfaSucc(context.Background(), userID, tfaCode); err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.GetUser(context.Background(), "lisi"); err != nil {
			t.Fatal(err)
		}
		want := []string{"wecom/auth/get_tfa_info 20", "wecom/user/tfa_succ 20"}
		if len(sem.keys) != 2 || sem.keys[0] != want[0] || sem.keys[1] != want[1] || sem.released != 2 {
			t.Fatalf("semaphore saw %q (released %d), want %q each released; uncapped APIs must not ask", sem.keys, sem.released, want)
		}
	})
}

// recordingSemaphore grants every slot and records what was asked.
type recordingSemaphore struct {
	mu       sync.Mutex
	keys     []string
	released int
}

func (s *recordingSemaphore) Acquire(_ context.Context, key string, limit int, lease time.Duration) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lease <= 0 {
		return nil, context.DeadlineExceeded
	}
	s.keys = append(s.keys, key+" "+itoa(limit))
	return func() {
		s.mu.Lock()
		s.released++
		s.mu.Unlock()
	}, nil
}
