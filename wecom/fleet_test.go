package wecom_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/cache"

	"github.com/wecampus/wecampus/redis"
	"github.com/wecampus/wecampus/redis/redistest"
	"github.com/wecampus/wecampus/wecom"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// fleet returns n Clients of one simulator, each a replica with its own process cache and its
// own connection to one Redis (at redisAddr, under one key prefix).
func fleet(t *testing.T, sim *wecomtest.Server, n int, redisAddr, prefix string) []*wecom.Client {
	t.Helper()
	cs := make([]*wecom.Client, n)
	for i := range cs {
		rc := redistest.Open(t, redisAddr, prefix)
		c, err := wecom.New(apiTestConfig(sim), nil, wecom.WithCache(cache.NewMemory()),
			wecom.WithTokenStore(rc), wecom.WithSemaphore(rc))
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c
	}
	return cs
}

// burst runs n calls spread over the replicas at once and fails the test on any error.
func burst(t *testing.T, cs []*wecom.Client, n int, call func(c *wecom.Client, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := call(cs[i%len(cs)], i); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}

// sendAndLookUp uses both secrets: message/send (app) and user/getuserid (contacts), each on
// every replica of burst (i/2, not i, so that with two replicas the two do not pair up).
func sendAndLookUp(c *wecom.Client, i int) error {
	if i/2%2 == 0 {
		return c.SendText(context.Background(), "zs", "hi", 0)
	}
	_, err := c.UserIDByMobile(context.Background(), "13800000001")
	return err
}

func gettokens(sim *wecomtest.Server) map[string]int {
	n := map[string]int{}
	for _, call := range sim.Calls() {
		if call.Endpoint == "gettoken" {
			n[call.Query.Get("corpsecret")]++
		}
	}
	return n
}

func TestFleetGettokenOncePerSecret(t *testing.T) {
	addr := redistest.Addr(t)
	sim := wecomtest.New(apiTestCorp)
	t.Cleanup(sim.Close)
	sim.SetLatency(20 * time.Millisecond)
	if err := sim.AddMember(wecomtest.Member{UserID: "zs", Name: "张三", Mobile: "13800000001", Department: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	cs := fleet(t, sim, 3, addr, redistest.Prefix(t, addr))

	burst(t, cs, 90, sendAndLookUp)
	want := map[string]int{sim.AppSecret(): 1, sim.ContactsSecret(): 1}
	if got := gettokens(sim); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("gettoken calls per secret for 3 replicas = %v, want one each", got)
	}

	// WeCom expires the tokens early: every replica gets 42001, the fleet refreshes once.
	sim.ExpireTokens()
	burst(t, cs, 90, sendAndLookUp)
	want = map[string]int{sim.AppSecret(): 2, sim.ContactsSecret(): 2}
	if got := gettokens(sim); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("gettoken calls per secret after 42001 on every replica = %v, want %v", got, want)
	}
}

func TestFleetTokensWithoutRedis(t *testing.T) {
	addr := redistest.Addr(t)
	proxy := redistest.NewProxy(t, addr)
	sim := wecomtest.New(apiTestCorp)
	t.Cleanup(sim.Close)
	if err := sim.AddMember(wecomtest.Member{UserID: "zs", Name: "张三", Mobile: "13800000001", Department: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	cs := fleet(t, sim, 2, proxy.Addr(), redistest.Prefix(t, addr))
	burst(t, cs, 20, sendAndLookUp)

	// Redis goes away and the tokens expire: each replica fetches its own token once and keeps
	// it in its process, never one per request.
	proxy.Cut()
	sim.ExpireTokens()
	for range 3 {
		burst(t, cs, 40, sendAndLookUp)
	}
	got := gettokens(sim)
	t.Logf("gettoken calls per secret, Redis cut after the first: %v", got)
	for _, secret := range []string{sim.AppSecret(), sim.ContactsSecret()} {
		if n := got[secret]; n != 3 {
			t.Errorf("gettoken calls for one secret with Redis down = %d, want 1 before + 1 per replica", n)
		}
	}
}

// Two replicas share the 2FA cap through Redis: each alone would allow 20 calls in flight, 40
// together, and WeCom would refuse the excess with 45033.
func TestFleetTfaCap(t *testing.T) {
	addr := redistest.Addr(t)
	sim := wecomtest.New(apiTestCorp)
	t.Cleanup(sim.Close)
	sim.SetLatency(30 * time.Millisecond)
	if err := sim.AddMember(wecomtest.Member{UserID: "zs", Name: "张三", Department: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	cs := fleet(t, sim, 2, addr, redistest.Prefix(t, addr))
	codes := make([]string, 80)
	for i := range codes {
		codes[i] = sim.IssueTfaCode("zs")
	}
	burst(t, cs, len(codes), func(c *wecom.Client, i int) error {
		_, _, err := c.TfaInfo(context.Background(), codes[i])
		return err
	})
	if p := sim.MaxInFlight("auth/get_tfa_info"); p != 20 {
		t.Errorf("most get_tfa_info calls in flight from two replicas = %d, want the cap 20", p)
	}
}

var _ wecom.TokenStore = (*redis.Client)(nil)
var _ wecom.Semaphore = (*redis.Client)(nil)
