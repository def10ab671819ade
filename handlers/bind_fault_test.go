package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// contactsTokens counts gettoken calls made with the 通讯录同步 secret.
func (e *env) contactsTokens() int {
	n := 0
	for _, c := range e.sim.Calls() {
		if c.Endpoint == "gettoken" && c.Query.Get("corpsecret") == e.sim.ContactsSecret() {
			n++
		}
	}
	return n
}

func TestBindTokenExpired(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		m := e.person("2021123456", "张三", "student")
		e.sim.Inject("user/create", 1, wecomtest.Fault{ErrCode: 42001})
		r := m.submitMobile("13800001234")
		mustStatus(t, "bind with an expired token", r, http.StatusOK)
		if n := e.sim.CallCount("user/create"); n != 2 {
			t.Fatalf("user/create calls = %d, want the rejected one and one resend", n)
		}
		if n := e.contactsTokens(); n != 2 {
			t.Fatalf("contacts gettoken calls = %d, want 2 (initial and refresh)", n)
		}
		if b := e.liveBinding("2021123456"); b == nil || b.Status != app.StatusPending {
			t.Fatalf("binding: %+v", b)
		}

		// A real expiry (every token rejected) is handled the same way.
		e.sim.ExpireTokens()
		m2 := e.person("2021123457", "李四", "student")
		mustStatus(t, "bind after expiry", m2.submitMobile("13800005678"), http.StatusOK)
	})
}

func TestBindWeComBusy(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		for _, code := range []int{-1, 45009, 45033} {
			t.Run(fmt.Sprint(code), func(t *testing.T) {
				e := newEnv(t, append(opts, withLocalBaseURL())...)
				m := e.person("2021123456", "张三", "student")
				e.sim.Inject("user/create", 2, wecomtest.Fault{ErrCode: code})
				for i := 0; i < 2; i++ {
					r := m.submitMobile("13800001234")
					mustStatus(t, "busy", r, http.StatusServiceUnavailable)
					mustContain(t, "busy", r.page(), "系统繁忙", `value="13800001234"`)
					mustNotContain(t, "busy", r.page(), fmt.Sprint(code))
					if !hasForm(r.page(), "/bind/mobile", "mobile") {
						t.Fatal("the busy page must let the member submit again")
					}
					// Nothing half-done.
					if _, ok := e.sim.Member("2021123456"); ok {
						t.Fatal("member exists after a refused create")
					}
					if got := e.tally(); got.Bindings != 0 || got.OpenIntents != 0 {
						t.Fatalf("after a refused create: %v", got)
					}
				}
				// WeCom recovers: the same person binds from the same page.
				r := m.submitMobile("13800001234")
				mustStatus(t, "after recovery", r, http.StatusOK)
				if b := e.liveBinding("2021123456"); b == nil || b.Mobile != "13800001234" {
					t.Fatalf("binding: %+v", b)
				}
				if got := e.intentResults(); len(got) != 3 || got[0] != "failed" || got[1] != "failed" || got[2] != "bound" {
					t.Fatalf("intents: %v", got)
				}
			})
		}
	})
}

func TestBindCreateTimeout(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		for _, tc := range []struct {
			name    string
			fault   wecomtest.Fault
			applied bool
		}{
			{"DroppedAfterApplying", wecomtest.Fault{Drop: true}, true},
			{"SlowAnswer", wecomtest.Fault{Latency: 2 * time.Second}, true},
			{"ResetAfterApplying", wecomtest.Fault{Reset: true}, true},
			{"DroppedBeforeApplying", wecomtest.Fault{Drop: true, NotApplied: true}, false},
			{"ResetBeforeApplying", wecomtest.Fault{Reset: true, NotApplied: true}, false},
			{"GatewayError", wecomtest.Fault{HTTPStatus: http.StatusBadGateway}, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, append(opts, withLocalBaseURL(), withWeComTimeout(300*time.Millisecond))...)
				clock := e.useClock()
				m := e.person("2021123456", "张三", "student")
				e.sim.Inject("user/create", 1, tc.fault)
				r := m.submitMobile("13800001234")
				if n := e.sim.CallCount("user/create"); n != 1 {
					t.Fatalf("user/create calls = %d: a create whose outcome is unknown must be resolved by reading", n)
				}
				if n := e.sim.CallCount("user/get"); n != 1 {
					t.Fatalf("user/get calls = %d", n)
				}
				if tc.applied {
					mustStatus(t, "applied create", r, http.StatusOK)
					mustContain(t, "applied create", r.page(), "注册成功")
					if b := e.liveBinding("2021123456"); b == nil || b.Status != app.StatusPending {
						t.Fatalf("binding: %+v", b)
					}
					if got := e.intentResults(); len(got) != 1 || got[0] != "bound" {
						t.Fatalf("intents: %v", got)
					}
					return
				}
				// WeCom may still land the create: the intent stays open, and the page says how
				// long until a read can tell.
				mustStatus(t, "lost create", r, http.StatusServiceUnavailable)
				mustContain(t, "lost create", r.page(), "请约 60 秒后")
				if got := e.tally(); got.Bindings != 0 || got.OpenIntents != 1 {
					t.Fatalf("after a lost create: %v", got)
				}
				if _, ok := e.sim.Member("2021123456"); ok {
					t.Fatal("member exists")
				}
				clock.Advance(30 * time.Second)
				r = m.submitMobile("13800001234")
				mustStatus(t, "early retry", r, http.StatusServiceUnavailable)
				mustContain(t, "early retry", r.page(), "请约 30 秒后")
				if n := e.sim.CallCount("user/create"); n != 1 {
					t.Fatalf("user/create calls = %d before the create could be ruled out", n)
				}
				clock.Advance(31 * time.Second)
				mustStatus(t, "retry", m.submitMobile("13800001234"), http.StatusOK)
				if e.liveBinding("2021123456") == nil {
					t.Fatal("no binding after the retry")
				}
			})
		}
	})
}

func TestBindCreateOutcomeUnknownThenRepaired(t *testing.T) {
	// The create is applied but its answer lost, and WeCom cannot be read either: the member
	// exists without a binding until the repair (or a retry, TestBindRetryResolvesAtOnce)
	// resolves the open intent by reading.
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL(), withWeComTimeout(300*time.Millisecond))...)
		clock := e.useClock()
		m := e.person("2021123456", "张三", "student")
		e.sim.Inject("user/create", 1, wecomtest.Fault{Drop: true})
		e.sim.Inject("user/get", 1, wecomtest.Fault{ErrCode: -1})
		r := m.submitMobile("13800001234")
		mustStatus(t, "unknown outcome", r, http.StatusServiceUnavailable)
		if got := e.tally(); got.Bindings != 0 || got.OpenIntents != 1 {
			t.Fatalf("after an unknown outcome: %v", got)
		}
		// Nobody works on the intent now: the repair reads WeCom and stores the binding.
		clock.Advance(time.Second)
		if n, err := e.svc.RepairIntents(context.Background()); err != nil || n != 1 {
			t.Fatalf("repair: %d %v", n, err)
		}
		b := e.liveBinding("2021123456")
		if b == nil || b.Status != app.StatusPending || b.Mobile != "13800001234" {
			t.Fatalf("binding after repair: %+v", b)
		}
		if got := e.intentResults(); len(got) != 1 || got[0] != "bound" {
			t.Fatalf("intents: %v", got)
		}
		r = m.submitMobile("13800001234")
		mustStatus(t, "after repair", r, http.StatusOK)
		mustContain(t, "after repair", r.page(), "已绑定")
		if n := e.sim.CallCount("user/create"); n != 1 {
			t.Fatalf("user/create calls = %d", n)
		}
	})
}

func TestBindRetryResolvesAtOnce(t *testing.T) {
	// As above, but the member submits again at once: the retry reads WeCom, finds the member
	// and shows the result, never creating twice.
	e := newEnv(t, withLocalBaseURL(), withWeComTimeout(300*time.Millisecond))
	m := e.person("2021123456", "张三", "student")
	e.sim.Inject("user/create", 1, wecomtest.Fault{Drop: true})
	e.sim.Inject("user/get", 1, wecomtest.Fault{ErrCode: -1})
	mustStatus(t, "unknown outcome", m.submitMobile("13800001234"), http.StatusServiceUnavailable)
	r := m.submitMobile("13800001234")
	mustStatus(t, "retry", r, http.StatusOK)
	mustContain(t, "retry", r.page(), "已绑定")
	if n := e.sim.CallCount("user/create"); n != 1 {
		t.Fatalf("user/create calls = %d", n)
	}
	if got := e.tally(); got.LiveBindings != 1 || got.OpenIntents != 0 {
		t.Fatalf("stored: %v", got)
	}
}

func TestBindStaleIntentWeComLimit(t *testing.T) {
	// Resolving an earlier request's intent meets WeCom's concurrency limit (45033): a 503 page
	// with the form kept, never a 500; the intent stays open for the next try.
	e := newEnv(t, withLocalBaseURL())
	clock := e.useClock()
	m := e.person("2021123456", "张三", "student")
	until := clock.Now().Add(-time.Second)
	in := &app.Intent{Op: app.OpBind, Number: "2021123456", UserID: "2021123456", Mobile: "13800001234", Name: "张三",
		Type: "student", Department: 2, CreatedAt: clock.Now().Add(-time.Minute), ClaimOwner: "gone", ClaimUntil: &until, Tries: 1}
	if err := e.db.CreateIntent(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	e.sim.Inject("user/get", 1, wecomtest.Fault{ErrCode: 45033})
	r := m.submitMobile("13800001234")
	mustStatus(t, "45033 while resolving", r, http.StatusServiceUnavailable)
	if !hasForm(r.page(), "/bind/mobile", "mobile") {
		t.Fatalf("no form to submit again\n%s", r.body)
	}
	if got := e.tally(); got.OpenIntents != 1 || got.Bindings != 0 {
		t.Fatalf("stored: %v", got)
	}
	if e.writeCalls() != 0 {
		t.Fatal("wrote to WeCom")
	}
	// The gone request's create could still land for a minute after its claim ran out; after
	// that, the next try finds no member and creates it.
	clock.Advance(time.Minute)
	mustStatus(t, "next try", m.submitMobile("13800001234"), http.StatusOK)
	if e.liveBinding("2021123456") == nil || e.sim.CallCount("user/create") != 1 {
		t.Fatal("no binding after the next try")
	}
}

func TestBindStaleIntentResolvedByRetry(t *testing.T) {
	// The process died after user/create and before the binding insert; the member comes back
	// after the intent went stale (before the repair ran): the retry resolves it by reading.
	e := newEnv(t, withLocalBaseURL())
	clock := e.useClock()
	m := e.person("2021123456", "张三", "student")
	ctx := context.Background()
	in := &app.Intent{Op: app.OpBind, Number: "2021123456", UserID: "2021123456", Mobile: "13800001234", Name: "张三",
		Type: "student", Department: 2, CreatedAt: clock.Now()}
	if err := e.db.CreateIntent(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.AddMember(wecomtestMember("2021123456", "张三", "13800001234", 4)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Minute)
	r := m.submitMobile("13800001234")
	mustStatus(t, "retry after a crash", r, http.StatusOK)
	mustContain(t, "retry after a crash", r.page(), "已绑定")
	if e.sim.CallCount("user/create") != 0 {
		t.Fatal("created again")
	}
	if b := e.liveBinding("2021123456"); b == nil || b.Status != app.StatusPending {
		t.Fatalf("binding: %+v", b)
	}
}

func TestRepairIntents(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		clock := e.useClock()
		ctx := context.Background()
		intent := func(number, mobile string) {
			t.Helper()
			in := &app.Intent{Op: app.OpBind, Number: number, UserID: number, Mobile: mobile, Name: "张三",
				Type: "student", Department: 2, CreatedAt: clock.Now()}
			if err := e.db.CreateIntent(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		// Crashed after user/create: the member exists, not yet joined.
		intent("2021000001", "13800000001")
		if err := e.sim.AddMember(wecomtestMember("2021000001", "张三", "13800000001", 4)); err != nil {
			t.Fatal(err)
		}
		// Crashed after user/create, and the member joined before the repair.
		intent("2021000002", "13800000002")
		if err := e.sim.AddMember(wecomtestMember("2021000002", "张三", "13800000002", 1)); err != nil {
			t.Fatal(err)
		}
		// Crashed before user/create: nothing in WeCom.
		intent("2021000003", "13800000003")

		if n, err := e.svc.RepairIntents(ctx); err != nil || n != 0 {
			t.Fatalf("young intents repaired: %d %v", n, err)
		}
		clock.Advance(2*time.Minute + time.Second)
		if n, err := e.svc.RepairIntents(ctx); err != nil || n != 3 {
			t.Fatalf("repair: %d %v", n, err)
		}
		if b := e.liveBinding("2021000001"); b == nil || b.Status != app.StatusPending || b.Mobile != "13800000001" {
			t.Fatalf("binding 1: %+v", b)
		}
		if b := e.liveBinding("2021000002"); b == nil || b.Status != app.StatusActive {
			t.Fatalf("binding 2: %+v", b)
		}
		if b := e.liveBinding("2021000003"); b != nil {
			t.Fatalf("binding 3: %+v", b)
		}
		if got := e.intentResults(); strings.Join(got, ",") != "bound,bound,not_created" {
			t.Fatalf("intents: %v", got)
		}
		if e.writeCalls() != 0 {
			t.Fatal("the repair wrote to WeCom")
		}
		// Nothing is left to repair.
		clock.Advance(time.Minute)
		if n, err := e.svc.RepairIntents(ctx); err != nil || n != 0 {
			t.Fatalf("second repair: %d %v", n, err)
		}
	})
}

// concurrently runs fn(i) for i < n at once and waits.
func concurrently(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

func TestBindConcurrentSameNumber(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.sim.SetLatency(20 * time.Millisecond) // widen the window
		const n = 20
		ms := make([]*member, n)
		for i := range ms {
			ms[i] = e.person("2021123456", "张三", "student")
		}
		got := make([]response, n)
		concurrently(n, func(i int) {
			got[i] = ms[i].post("/bind/mobile", url.Values{"mobile": {"13800001234"}})
		})
		created, already, conflict := 0, 0, 0
		for i, r := range got {
			switch {
			case r.status == http.StatusOK && strings.Contains(r.page(), "注册成功"):
				created++
			case r.status == http.StatusOK && strings.Contains(r.page(), "已绑定"):
				already++
			case r.status == http.StatusConflict:
				conflict++
			default:
				t.Fatalf("answer %d: status %d\n%s", i, r.status, r.body)
			}
		}
		t.Logf("created %d, already bound %d, conflict %d", created, already, conflict)
		if created != 1 {
			t.Fatalf("%d answers say created", created)
		}
		if members := e.sim.Members(); len(members) != 1 {
			t.Fatalf("WeCom members: %+v", members)
		}
		if c := e.sim.CallCount("user/create"); c != 1 {
			t.Fatalf("user/create calls = %d", c)
		}
		if got := e.tally(); got.Bindings != 1 || got.LiveBindings != 1 || got.OpenIntents != 0 {
			t.Fatalf("stored: %v", got)
		}
		if e.sim.CallCount("user/update") != 0 || e.sim.CallCount("batch/invite") != 0 {
			t.Fatal("losers of the race wrote to WeCom")
		}
	})
}

func TestBindConcurrentSameMobile(t *testing.T) {
	// Twenty different people submit the same mobile at once: one gets it.
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.sim.SetLatency(10 * time.Millisecond)
		const n = 20
		ms := make([]*member, n)
		for i := range ms {
			ms[i] = e.person(fmt.Sprintf("20211000%02d", i), fmt.Sprintf("学生%d", i), "student")
		}
		got := make([]response, n)
		concurrently(n, func(i int) {
			got[i] = ms[i].post("/bind/mobile", url.Values{"mobile": {"13800001234"}})
		})
		ok, conflict := 0, 0
		for i, r := range got {
			switch r.status {
			case http.StatusOK:
				ok++
			case http.StatusConflict:
				conflict++
				mustNotContain(t, "conflict", r.page(), "13800001234")
			default:
				t.Fatalf("answer %d: status %d\n%s", i, r.status, r.body)
			}
		}
		if ok != 1 || conflict != n-1 {
			t.Fatalf("%d bound, %d conflicts", ok, conflict)
		}
		if got := e.tally(); got.LiveBindings != 1 || got.OpenIntents != 0 {
			t.Fatalf("stored: %v", got)
		}
		if members := e.sim.Members(); len(members) != 1 {
			t.Fatalf("WeCom members: %d", len(members))
		}
	})
}
