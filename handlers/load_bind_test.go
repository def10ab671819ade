package handlers_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoadBind is the load figure of the bind flow: N distinct people bind at concurrency C
// against the WeCom simulator answering every call after 30 ms. It runs only with
// WECAMPUS_LOAD=1 (and on MariaDB with TEST_MYSQL_DSN); WECAMPUS_LOAD_N, WECAMPUS_LOAD_C and
// WECAMPUS_LOAD_LATENCY override 500, 50 and 30ms. Run it with -v to see the figures:
//
//	WECAMPUS_LOAD=1 go test -run TestLoadBind -v ./handlers/
func TestLoadBind(t *testing.T) {
	if os.Getenv("WECAMPUS_LOAD") != "1" {
		t.Skip("set WECAMPUS_LOAD=1 to run the load test")
	}
	n := envInt(t, "WECAMPUS_LOAD_N", 500)
	conc := envInt(t, "WECAMPUS_LOAD_C", 50)
	latency := 30 * time.Millisecond
	if v := os.Getenv("WECAMPUS_LOAD_LATENCY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("WECAMPUS_LOAD_LATENCY: %v", err)
		}
		latency = d
	}
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		// serve's log level, written nowhere: the figure is about the service, not the log sink.
		// All the people come from one address here: lift the per-address limit (as a campus
		// behind one NAT address would need for this many logins in a minute).
		e := newEnv(t, append(opts, withLocalBaseURL(), withLogLevel(slog.LevelInfo), withLogOutput(io.Discard), withRateLimit(1_000_000))...)
		e.sim.SetLatency(latency)
		tr := &http.Transport{MaxIdleConns: 2 * conc, MaxIdleConnsPerHost: 2 * conc}
		t.Cleanup(tr.CloseIdleConnections)

		people := make([]*member, n)
		for i := range people {
			number := fmt.Sprintf("2025%06d", i)
			e.cas.AddUser(number, "pw", fmt.Sprintf("学生%d", i), "student")
			people[i] = e.newMember()
			people[i].c.Transport = tr
		}

		// Phase 1: CAS login (one ticket validation each); phase 2: the bind itself.
		loginLat, loginWall, loginFail := runLoad(n, conc, func(i int) bool {
			r := people[i].login(fmt.Sprintf("2025%06d", i))
			return r.status == http.StatusOK && hasForm(r.page(), "/bind/mobile", "mobile")
		})
		before := e.sim.Calls()
		bindLat, bindWall, bindFail := runLoad(n, conc, func(i int) bool {
			r := people[i].post("/bind/mobile", url.Values{"mobile": {fmt.Sprintf("139%08d", i)}})
			return r.status == http.StatusOK
		})
		calls := e.sim.Calls()[len(before):]
		byEndpoint := map[string]int{}
		for _, c := range calls {
			byEndpoint[c.Endpoint]++
		}

		if loginFail != 0 || bindFail != 0 {
			t.Fatalf("%d logins and %d binds failed", loginFail, bindFail)
		}
		if got := e.tally(); got.LiveBindings != n || got.OpenIntents != 0 {
			t.Fatalf("stored %v, want %d live bindings", got, n)
		}
		if m := len(e.sim.Members()); m != n {
			t.Fatalf("%d WeCom members, want %d", m, n)
		}
		t.Logf("load: %d people, concurrency %d, WeCom latency %s", n, conc, latency)
		t.Logf("login  (GET /bind/login + /bind/cas): %6.1f/s  p50 %-8s p99 %-8s max %s", float64(n)/loginWall.Seconds(),
			pct(loginLat, 50), pct(loginLat, 99), pct(loginLat, 100))
		t.Logf("bind   (POST /bind/mobile):           %6.1f/s  p50 %-8s p99 %-8s max %s", float64(n)/bindWall.Seconds(),
			pct(bindLat, 50), pct(bindLat, 99), pct(bindLat, 100))
		t.Logf("WeCom calls per bind: %.3f (all: %v)", float64(len(calls))/float64(n), byEndpoint)
	})
}

// runLoad runs fn(0..n-1) on conc workers and returns each call's latency (sorted), the wall
// time and how many calls reported failure.
func runLoad(n, conc int, fn func(i int) bool) ([]time.Duration, time.Duration, int) {
	lat := make([]time.Duration, n)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if !fn(i) {
					failed.Add(1)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	slices.Sort(lat)
	return lat, wall, int(failed.Load())
}

// pct returns the p-th percentile of sorted latencies, rounded for printing.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	i = min(max(i-1, 0), len(sorted)-1)
	return sorted[i].Round(100 * time.Microsecond)
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
