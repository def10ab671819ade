// Package redistest helps tests use the real Redis named by TEST_REDIS_ADDR: a fresh key prefix
// per test whose keys are deleted at the end (never FLUSHDB: the Redis may be shared), and a TCP
// proxy that a test can cut and restore to play an outage without stopping the shared Redis.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/redis"
)

// EnvAddr names the environment variable with the test Redis's host:port.
const EnvAddr = "TEST_REDIS_ADDR"

// Addr returns the test Redis's address, or skips the test when TEST_REDIS_ADDR is unset.
func Addr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		tb.Skip(EnvAddr + " is not set (e.g. 127.0.0.1:6379)")
	}
	return addr
}

// Prefix returns a fresh key prefix and deletes every key under it when the test ends.
func Prefix(tb testing.TB, addr string) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "wecampus-test-" + hex.EncodeToString(b[:]) + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := redis.Open(ctx, redis.Config{Addr: addr, KeyPrefix: prefix}, nil, nil)
		if err != nil {
			tb.Errorf("redistest: delete keys of %s: %v", prefix, err)
			return
		}
		defer c.Close()
		if _, err := c.DeleteKeys(ctx); err != nil {
			tb.Errorf("redistest: delete keys of %s: %v", prefix, err)
		}
	})
	return prefix
}

// Open opens a Client on addr under prefix and closes it when the test ends.
func Open(tb testing.TB, addr, prefix string) *redis.Client {
	tb.Helper()
	c, err := redis.Open(context.Background(), redis.Config{Addr: addr, KeyPrefix: prefix}, nil, nil)
	if err != nil {
		tb.Fatalf("redistest: open %s: %v", addr, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Proxy forwards TCP connections to a target and can play an outage: Cut closes every connection
// and answers new ones by closing them at once (like a Redis that is gone), Blackhole holds new
// ones open without an answer (like a network that drops packets), Restore forwards again.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  int // proxyForward, proxyCut or proxyBlackhole
	conns map[net.Conn]struct{}
}

const (
	proxyForward = iota
	proxyCut
	proxyBlackhole
)

// NewProxy listens on a free loopback port and forwards to target until the test ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	tb.Cleanup(func() {
		_ = ln.Close()
		p.closeAll()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection and refuses service to new ones until Restore.
func (p *Proxy) Cut() { p.set(proxyCut) }

// Blackhole closes every connection and lets new ones hang without an answer until Restore.
func (p *Proxy) Blackhole() { p.set(proxyBlackhole) }

// Restore forwards new connections again.
func (p *Proxy) Restore() { p.set(proxyForward) }

func (p *Proxy) set(mode int) {
	p.mu.Lock()
	p.mode = mode
	p.mu.Unlock()
	if mode != proxyForward {
		p.closeAll()
	}
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// track registers c, or reports false when the proxy is not forwarding.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return p.mode == proxyForward
}

func (p *Proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		p.mu.Lock()
		mode := p.mode
		p.mu.Unlock()
		switch mode {
		case proxyCut:
			_ = in.Close()
		case proxyBlackhole:
			p.track(in) // closed by the next mode change or the end of the test
		default:
			go p.forward(in)
		}
	}
}

func (p *Proxy) forward(in net.Conn) {
	out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		_ = in.Close()
		return
	}
	if !p.track(in, out) {
		_ = in.Close()
		_ = out.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	_ = in.Close()
	_ = out.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, in)
	delete(p.conns, out)
	p.mu.Unlock()
}
