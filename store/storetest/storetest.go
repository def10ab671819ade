// Package storetest opens real, migrated stores for other packages' tests: a fresh SQLite file,
// or a fresh database on the MariaDB/MySQL server named by TEST_MYSQL_DSN (dropped when the test
// ends), optionally behind a Proxy that can cut or blackhole it. Tests that need MariaDB skip
// without TEST_MYSQL_DSN; .ci/run always sets it.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/wecampus/wecampus/store"
)

// Kinds are the store drivers a test can run on.
var Kinds = []string{store.DriverSQLite, store.DriverMySQL}

// Open opens a fresh migrated store of the given driver with the clock now (nil: time.Now); it
// is closed, and a MariaDB database dropped, when tb ends. A MySQL store skips tb when
// TEST_MYSQL_DSN is unset.
func Open(tb testing.TB, driver string, now func() time.Time) *store.DB {
	tb.Helper()
	cfg := store.Config{Driver: driver}
	switch driver {
	case store.DriverSQLite:
		cfg.DSN = filepath.Join(tb.TempDir(), "wecampus.db")
	case store.DriverMySQL:
		cfg.DSN = FreshMySQLDSN(tb)
	default:
		tb.Fatalf("storetest: unknown driver %q", driver)
	}
	if now == nil {
		now = time.Now
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg, now, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("storetest: open %s: %v", driver, err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		tb.Fatalf("storetest: migrate %s: %v", driver, err)
	}
	return db
}

// FreshMySQLDSN creates an empty database on the TEST_MYSQL_DSN server and returns a DSN for
// it; the database is dropped when tb ends. The DSN's user needs CREATE and DROP rights; the
// database named in TEST_MYSQL_DSN itself is never used. It skips tb when TEST_MYSQL_DSN is
// unset.
func FreshMySQLDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("TEST_MYSQL_DSN")
	if dsn == "" {
		tb.Skip("TEST_MYSQL_DSN is not set")
	}
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		tb.Fatalf("TEST_MYSQL_DSN: %v", err)
	}
	cfg.DBName = ""
	server, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = server.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	name := "wecampus_test_" + hex.EncodeToString(b[:])
	if _, err := server.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
		tb.Fatalf("storetest: create database (TEST_MYSQL_DSN needs CREATE and DROP rights): %v", err)
	}
	// Registered before the caller's Open cleanup, so it runs after the store is closed.
	tb.Cleanup(func() {
		if _, err := server.Exec("DROP DATABASE " + name); err != nil {
			tb.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// Proxy forwards TCP connections to a target (a MariaDB server) and plays outages: Cut closes
// every connection and refuses new ones (a database that is gone or restarting), Blackhole
// stalls every connection, old and new, without an answer (a network that drops packets), and
// Restore forwards again, releasing what was stalled.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  int
	gate  chan struct{} // closed while forwarding; a stalled copy waits for it
	conns map[net.Conn]struct{}
}

const (
	proxyForward = iota
	proxyCut
	proxyBlackhole
)

// NewProxy listens on a free loopback port and forwards to target until tb ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("storetest: proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, gate: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.gate)
	go p.serve()
	tb.Cleanup(func() {
		_ = ln.Close()
		p.Restore()
		p.closeAll()
	})
	return p
}

// ProxiedMySQLDSN is FreshMySQLDSN reached through a new Proxy.
func ProxiedMySQLDSN(tb testing.TB) (string, *Proxy) {
	tb.Helper()
	cfg, err := mysqldrv.ParseDSN(FreshMySQLDSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	p := NewProxy(tb, cfg.Addr)
	cfg.Net, cfg.Addr = "tcp", p.Addr()
	return cfg.FormatDSN(), p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection and closes new ones at once until Restore.
func (p *Proxy) Cut() {
	p.set(proxyCut)
	p.closeAll()
}

// Blackhole stalls every connection, and accepts new ones without forwarding, until Restore.
func (p *Proxy) Blackhole() { p.set(proxyBlackhole) }

// Restore forwards again.
func (p *Proxy) Restore() { p.set(proxyForward) }

func (p *Proxy) set(mode int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case mode == proxyForward && p.mode == proxyBlackhole:
		close(p.gate)
	case mode == proxyBlackhole && p.mode != proxyBlackhole:
		p.gate = make(chan struct{})
	}
	p.mode = mode
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *Proxy) state() (int, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.gate
}

func (p *Proxy) track(add bool, cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		if add {
			p.conns[c] = struct{}{}
		} else {
			delete(p.conns, c)
		}
	}
}

func (p *Proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		if mode, _ := p.state(); mode == proxyCut {
			_ = in.Close()
			continue
		}
		go p.forward(in)
	}
}

func (p *Proxy) forward(in net.Conn) {
	p.track(true, in)
	defer p.track(false, in)
	defer in.Close()
	if !p.wait() {
		return
	}
	out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	p.track(true, out)
	defer p.track(false, out)
	done := make(chan struct{}, 2)
	go p.pipe(out, in, done)
	go p.pipe(in, out, done)
	<-done
	_ = in.Close()
	_ = out.Close()
	<-done
}

// wait holds a connection while the proxy stalls; false when it was cut meanwhile.
func (p *Proxy) wait() bool {
	for {
		mode, gate := p.state()
		switch mode {
		case proxyCut:
			return false
		case proxyForward:
			return true
		}
		select {
		case <-gate:
		case <-time.After(100 * time.Millisecond): // notice a Cut, and a closed conn at the end
		}
	}
}

// pipe copies src to dst, holding each chunk while the proxy stalls.
func (p *Proxy) pipe(dst, src net.Conn, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
