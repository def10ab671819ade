package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// outageLog records what clients saw while the database was away.
type outageLog struct {
	mu      sync.Mutex
	from    time.Time // the outage began
	to      time.Time // the database was back (zero while away)
	during  map[string]statusCount
	all     statusCount
	slowest map[string]time.Duration
}

func newOutageLog() *outageLog {
	return &outageLog{during: map[string]statusCount{}, all: statusCount{}, slowest: map[string]time.Duration{}}
}

// add records one answer of kind that started at start.
func (l *outageLog) add(kind string, start time.Time, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	took := time.Since(start)
	l.all[status]++
	if start.Before(l.from.Add(100*time.Millisecond)) || (!l.to.IsZero() && !start.Add(took).Before(l.to)) {
		return // straddles the edge of the outage
	}
	if l.during[kind] == nil {
		l.during[kind] = statusCount{}
	}
	l.during[kind][status]++
	l.slowest[kind] = max(l.slowest[kind], took)
}

func (l *outageLog) end(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.to = at
}

func (l *outageLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	kinds := make([]string, 0, len(l.during))
	for k := range l.during {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, "%s %v (slowest %v); ", k, l.during[k], l.slowest[k].Round(10*time.Millisecond))
	}
	return b.String()
}

// TestFleetDatabaseOutage: two replicas on MariaDB behind a proxy. While members use the pages
// and WeCom delivers callbacks, the database is blackholed for 5 s (packets dropped: calls hang
// until their deadline), then cut for 5 s (connections refused). Throughout: /readyz 503, member
// pages a 503 page, callbacks 503 within WeCom's 5 s, never a 500. When the database is back the
// replicas recover without a restart; the callbacks WeCom retries are applied once (one welcome
// per activation); the bind that was between user/create and its binding insert when the
// database went is repaired; no WeCom member is left without its binding.
func TestFleetDatabaseOutage(t *testing.T) {
	f := newFleet(t, fleetSpec{replicas: 2, proxy: true})
	if f.proxy == nil {
		t.Skip("needs MariaDB")
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	for _, r := range f.replicas {
		go r.svc.RunBackground(ctx, 200*time.Millisecond)
	}
	const people = 5
	ms := make([]*member, people)
	for i := range ms {
		ms[i] = pin(f.person(fmt.Sprintf("20220000%02d", i), "学生", "student"), i%2)
	}
	f.cas.AddUser("2022000099", "pw", "学生", "student") // logs in during the outage
	pending := make([]string, 4)
	for i := range pending {
		pending[i] = fmt.Sprintf("20210000%02d", i)
		f.seedBinding(pending[i], "学生", fmt.Sprintf("139000000%02d", i), app.StatusPending)
	}

	// One bind is in user/create when the database goes: WeCom applies it, the binding insert
	// cannot happen.
	f.sim.Inject("user/create", 1, wecomtest.Fault{Latency: 800 * time.Millisecond})
	inflight := make(chan response, 1)
	go func() { inflight <- ms[0].post("/bind/mobile", url.Values{"mobile": {"13700000000"}}) }()
	waitFor(t, "the bind to reach user/create", func() bool { return f.sim.CallCount("user/create") == 1 })

	log := newOutageLog()
	log.from = time.Now()
	f.proxy.Blackhole()
	retries := f.duringOutage(log, ms[1:], pending)
	f.proxy.Restore()
	restored := time.Now()
	log.end(restored)

	recovered := f.waitReady(t)
	t.Logf("FIGURE outage statuses (blackholed 5 s, then cut 5 s): %s", log)
	t.Logf("FIGURE outage recovery: /readyz 200 on both replicas %v after the database returned", recovered.Round(time.Millisecond))
	if n := log.all.fiveHundreds(); n != 0 {
		t.Errorf("%d answers were 500 (all answers %v)", n, log.all)
	}
	for kind, sc := range log.during {
		for status := range sc {
			if status != http.StatusServiceUnavailable {
				t.Errorf("%s answered %d during the outage: %v", kind, status, sc)
			}
		}
	}
	if d := log.slowest["callback"]; d > 4500*time.Millisecond {
		t.Errorf("a callback took %v: WeCom gives up after 5 s", d)
	}
	f.afterOutage(t, retries, inflight, ms, pending)
}

// duringOutage keeps members, probes and WeCom busy for 10 s of outage (blackholed, then cut
// half-way) and returns the callback deliveries that were not applied, for WeCom to retry.
func (f *fleet) duringOutage(log *outageLog, ms []*member, pending []string) []delivery {
	var (
		mu      sync.Mutex
		retries []delivery
		wg      sync.WaitGroup
	)
	run := func(kind string, fn func() int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			log.add(kind, start, fn())
		}()
	}
	for tick := 0; tick < 10; tick++ {
		if tick == 5 {
			f.proxy.Cut()
		}
		for i, r := range f.replicas {
			run("readyz", func() int { return r.do(http.MethodGet, "/readyz", "", nil).status })
			run("callback", func() int {
				u := pending[(tick*2+i)%len(pending)]
				d := r.event(&app.Inbound{FromUser: u, MsgType: "event", Event: "subscribe", AgentID: "1000002"})
				res := r.post(d)
				if res.status != http.StatusOK {
					mu.Lock()
					retries = append(retries, d)
					mu.Unlock()
				}
				return res.status
			})
			run("verify", func() int { return pin(f.newMember(), i).get("/verify?code=" + f.sim.IssueTfaCode(pending[i])).status })
		}
		for i, m := range ms {
			tab := &member{e: m.e, c: m.c, last: m.last, header: m.header} // submits overlap: one tab each
			run("bind", func() int {
				return tab.post("/bind/mobile", url.Values{"mobile": {fmt.Sprintf("137000000%02d", i+1)}}).status
			})
		}
		run("login", func() int { return pin(f.newMember(), tick%2).login("2022000099").status })
		time.Sleep(time.Second)
	}
	wg.Wait()
	return retries
}

// waitReady waits until /readyz answers 200 on every replica and returns how long that took.
func (f *fleet) waitReady(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, "readiness", func() bool {
		for _, r := range f.replicas {
			if r.do(http.MethodGet, "/readyz", "", nil).status != http.StatusOK {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

// afterOutage checks the recovery: WeCom's retries applied once, the binds work, the bind cut
// off mid-way repaired, no member without a binding.
func (f *fleet) afterOutage(t *testing.T, retries []delivery, inflight chan response, ms []*member, pending []string) {
	t.Helper()
	start := time.Now()
	for _, d := range retries { // WeCom retries each delivery that was not answered 200, twice
		for range 2 {
			if r := f.post(d); r.status != http.StatusOK {
				t.Errorf("retried delivery: status %d", r.status)
			}
		}
	}
	waitFor(t, "the welcome messages", func() bool { return len(f.sim.Messages()) >= len(pending) })
	time.Sleep(500 * time.Millisecond) // a second message would come now
	counts := f.messagesTo()
	for _, u := range pending {
		if counts[u] != 1 {
			t.Errorf("%s got %d welcome messages", u, counts[u])
		}
	}
	if r := <-inflight; r.status != http.StatusServiceUnavailable {
		t.Errorf("the bind cut off by the outage: status %d", r.status)
	}
	for i, m := range ms[1:] {
		r := m.post("/bind/mobile", url.Values{"mobile": {fmt.Sprintf("137000000%02d", i+1)}})
		mustStatus(t, "bind after the outage", r, http.StatusOK)
	}
	t.Logf("FIGURE outage after: %d callbacks retried by WeCom (x2), binds work %v after the database returned",
		len(retries), time.Since(start).Round(time.Millisecond))
	orphans := f.orphans()
	f.clock.Advance(31 * time.Second) // the claim of the cut-off bind has run out
	waitFor(t, "the repair of the cut-off bind", func() bool { return len(f.orphans()) == 0 })
	t.Logf("FIGURE outage orphans: %d WeCom member(s) without a binding right after the outage %v, 0 after the repair; %d members, %d live bindings",
		len(orphans), orphans, len(f.sim.Members()), f.tally().LiveBindings)
	if got := f.tally(); got.OpenIntents != 0 {
		t.Errorf("open intents left: %v", got)
	}
}
