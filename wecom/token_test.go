package wecom

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/cache"

	"github.com/wecampus/wecampus/app"
)

func TestTokCacheKeyDistinct(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range []string{
		tokCacheKey(tokApp, "ww1", "https://qyapi.weixin.qq.com", "s1"),
		tokCacheKey(tokContacts, "ww1", "https://qyapi.weixin.qq.com", "s1"),
		tokCacheKey(tokApp, "ww2", "https://qyapi.weixin.qq.com", "s1"),
		tokCacheKey(tokApp, "ww1", "http://127.0.0.1:1", "s1"),
		tokCacheKey(tokApp, "ww1", "https://qyapi.weixin.qq.com", "s2"),
	} {
		if keys[k] {
			t.Errorf("duplicate cache key %s", k)
		}
		keys[k] = true
		if strings.Contains(k, "s1") || strings.Contains(k, "s2") {
			t.Errorf("cache key %s contains the secret", k)
		}
	}
	if k := tokCacheKey(tokApp, "ww1", "b", "s"); k != tokCacheKey(tokApp, "ww1", "b", "s") {
		t.Errorf("cache key not stable: %s", k)
	}
}

func TestTokTTL(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want time.Duration
	}{
		{7200, 5700 * time.Second},
		{60, 45 * time.Second},
		{1, time.Second},
		{0, time.Second},
	} {
		if got := tokTTL(tc.in); got != tc.want {
			t.Errorf("tokTTL(%d) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A configuration failure is held for tokHoldFor, then gettoken is tried again.
func TestTokHoldsConfigFailure(t *testing.T) {
	now := time.Unix(1700000000, 0)
	fetches := 0
	code := 40001
	src := newTokSource(tokApp, "k", tokSafeCache(cache.NewMemory()), slog.New(slog.DiscardHandler),
		func(context.Context) (string, int64, error) {
			fetches++
			if code != 0 {
				return "", 0, &app.WeComError{Op: "gettoken", Code: code, Msg: "invalid credential"}
			}
			return "tok", 7200, nil
		})
	src.now = func() time.Time { return now }
	ctx := context.Background()
	for range 3 {
		if _, err := src.get(ctx); app.WeComCode(err) != 40001 {
			t.Fatalf("get = %v, want 40001", err)
		}
	}
	if fetches != 1 {
		t.Fatalf("%d fetches while held, want 1", fetches)
	}
	now = now.Add(tokHoldFor + time.Second)
	code = 0
	if tok, err := src.get(ctx); err != nil || tok != "tok" {
		t.Fatalf("get after the hold = %q, %v", tok, err)
	}
	if fetches != 2 {
		t.Errorf("%d fetches, want 2", fetches)
	}
	// Busy (-1) is not a configuration failure: not held.
	code = -1
	if err := src.drop(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := src.get(ctx); app.WeComCode(err) != -1 {
			t.Fatalf("get = %v, want -1", err)
		}
	}
	if fetches != 4 {
		t.Errorf("%d fetches, want 4 (-1 is retried on the next call)", fetches)
	}
}

// drop keeps a token another caller refreshed meanwhile.
func TestTokDropKeepsNewerToken(t *testing.T) {
	c := tokSafeCache(cache.NewMemory())
	src := newTokSource(tokApp, "k", c, slog.New(slog.DiscardHandler),
		func(context.Context) (string, int64, error) { return "new", 7200, nil })
	ctx := context.Background()
	if err := c.Set("k", "newer", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := src.drop(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if got := src.cached(); got != "newer" {
		t.Errorf("cached = %q after dropping another token, want newer", got)
	}
	if err := src.drop(ctx, "newer"); err != nil {
		t.Fatal(err)
	}
	if got := src.cached(); got != "" {
		t.Errorf("cached = %q after drop, want empty", got)
	}
}

// Waiting for another caller's refresh honours ctx.
func TestTokWaitHonoursContext(t *testing.T) {
	release := make(chan struct{})
	src := newTokSource(tokApp, "k", tokSafeCache(cache.NewMemory()), slog.New(slog.DiscardHandler),
		func(ctx context.Context) (string, int64, error) {
			<-release
			return "tok", 7200, nil
		})
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = src.get(context.Background()) })
	time.Sleep(20 * time.Millisecond) // let the first caller take the lock
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := src.get(ctx)
	var we *app.WeComError
	if !errors.As(err, &we) || !we.Unknown || we.Op != "gettoken" {
		t.Errorf("get while another refreshes = %v, want gettoken Unknown", err)
	}
	close(release)
	wg.Wait()
}

// silenceper's cache.Memory is wrapped so that concurrent use is race-free (run with -race).
func TestTokSafeCacheConcurrent(t *testing.T) {
	c := tokSafeCache(cache.NewMemory())
	if _, ok := c.(tokLockedCache); !ok {
		t.Fatalf("cache.Memory not wrapped: %T", c)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				_ = c.Set("k", i*j, time.Minute)
				_ = c.Get("k")
				_ = c.IsExist("k")
			}
		})
	}
	wg.Wait()
}

func TestAPIRedact(t *testing.T) {
	in := `Get "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww1&corpsecret=S3cr3t&x=1": EOF; access_token=abc.DEF-123 and TOKEN`
	got := apiRedact(in, "TOKEN")
	for _, leak := range []string{"S3cr3t", "abc.DEF-123", "TOKEN"} {
		if strings.Contains(got, leak) {
			t.Errorf("apiRedact left %q in %q", leak, got)
		}
	}
	if !strings.Contains(got, "corpid=ww1") || !strings.Contains(got, "&x=1") {
		t.Errorf("apiRedact removed too much: %q", got)
	}
}

func TestAPIUnknownDropsURL(t *testing.T) {
	err := &url.Error{Op: "Post", URL: "https://h/cgi-bin/user/create?access_token=TOK", Err: errors.New("connection reset by peer")}
	we, label := apiUnknown("user/create", err, time.Second)
	if label != apiLabelTransport || !we.Unknown || strings.Contains(we.Error(), "TOK") || !strings.Contains(we.Error(), "connection reset") {
		t.Errorf("apiUnknown = %v, %s", we, label)
	}
	err = &url.Error{Op: "Get", URL: "https://h/?access_token=TOK", Err: context.DeadlineExceeded}
	we, label = apiUnknown("user/get", err, 5*time.Second)
	if label != apiLabelTimeout || !we.Unknown || strings.Contains(we.Error(), "TOK") {
		t.Errorf("apiUnknown(timeout) = %v, %s", we, label)
	}
}
