package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/cas/castest"
	"github.com/wecampus/wecampus/sms"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/store/storetest"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// fleetParts is what the replicas of a fleet share: one database, one WeCom, one CAS, one SMS
// gateway, and the public origin of the load balancer in front.
type fleetParts struct {
	baseURL string
	store   store.Config
	sim     *wecomtest.Server
	cas     *castest.Server
	sms     *sms.Log
}

// fleetSpec describes a fleet.
type fleetSpec struct {
	replicas    int
	mysql       bool          // MariaDB (TEST_MYSQL_DSN) rather than one SQLite file
	proxy       bool          // MariaDB reached through a storetest.Proxy (fleet.proxy)
	callTimeout time.Duration // store.Config.CallTimeout; 0: the default
	env         []envOption   // applied to every replica
}

// fleet is several wecampus replicas in one process, each with its own database pool,
// app.Service and HTTP handler, over one database and one WeCom simulator. Members reach them
// through a front (the embedded env) that routes each request to the replica named by the
// X-Replica header, else round-robin, as a load balancer would. All replicas share clock.
type fleet struct {
	*env
	replicas []*env
	clock    *shiftClock
	proxy    *storetest.Proxy
	rr       atomic.Uint64
}

// shiftClock is the wall clock moved forward by Advance: leases and claims run in real time, and
// a test can still skip a wait.
type shiftClock struct{ off atomic.Int64 }

func (c *shiftClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *shiftClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// fleetKinds runs fn on a SQLite file and on MariaDB (skipped without TEST_MYSQL_DSN).
func fleetKinds(t *testing.T, fn func(t *testing.T, mysql bool)) {
	t.Run("SQLite", func(t *testing.T) { fn(t, false) })
	t.Run("MariaDB", func(t *testing.T) {
		if os.Getenv("TEST_MYSQL_DSN") == "" {
			t.Skip("TEST_MYSQL_DSN is not set")
		}
		fn(t, true)
	})
}

// newFleet starts spec.replicas replicas (at least 2) and the front.
func newFleet(t *testing.T, spec fleetSpec) *fleet {
	t.Helper()
	parts := &fleetParts{sim: wecomtest.New(testCorpID), cas: castest.New(), sms: sms.NewLog(nil)}
	front := httptest.NewUnstartedServer(nil)
	t.Cleanup(front.Close)
	parts.baseURL = "http://" + front.Listener.Addr().String()
	f := &fleet{clock: &shiftClock{}}
	switch {
	case spec.proxy:
		var dsn string
		dsn, f.proxy = storetest.ProxiedMySQLDSN(t)
		parts.store = store.Config{Driver: store.DriverMySQL, DSN: dsn}
	case spec.mysql:
		parts.store = store.Config{Driver: store.DriverMySQL, DSN: freshMySQL(t)}
	default:
		parts.store = store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "fleet.db")}
	}
	parts.store.CallTimeout = spec.callTimeout
	for range max(spec.replicas, 2) {
		r := newEnv(t, append(spec.env, func(c *envConfig) { c.fleet = parts })...)
		r.svc.Now = f.clock.Now
		f.replicas = append(f.replicas, r)
	}
	r0 := f.replicas[0]
	front.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.replicas[f.pick(r)].handler.ServeHTTP(w, r)
	})
	front.Start()
	f.env = &env{t: t, handler: front.Config.Handler, srv: front, db: r0.db, dbPath: r0.dbPath, svc: r0.svc,
		sim: parts.sim, cas: parts.cas, sms: parts.sms, baseURL: parts.baseURL, reg: r0.reg, logs: r0.logs,
		wecomApp: r0.wecomApp, wecomContacts: r0.wecomContacts}
	return f
}

// pick is the replica a request goes to: X-Replica, else the next in turn.
func (f *fleet) pick(r *http.Request) int {
	if i, err := strconv.Atoi(r.Header.Get("X-Replica")); err == nil && i >= 0 && i < len(f.replicas) {
		return i
	}
	return int(f.rr.Add(1)-1) % len(f.replicas)
}

// pin sends every request of m to replica i.
func pin(m *member, i int) *member {
	if m.header == nil {
		m.header = http.Header{}
	}
	m.header.Set("X-Replica", strconv.Itoa(i))
	return m
}

// orphans lists the WeCom members that have no live binding: members created by the service
// must always have one.
func (f *fleet) orphans() []string {
	f.t.Helper()
	var out []string
	for _, m := range f.sim.Members() {
		_, err := f.db.FindLiveBinding(context.Background(), "userid", m.UserID)
		switch app.ErrorCode(err) {
		case "":
		case app.ENOTFOUND:
			out = append(out, m.UserID)
		default:
			f.t.Fatalf("find binding of %s: %v", m.UserID, err)
		}
	}
	return out
}

// messagesTo counts the app messages WeCom delivered to each member.
func (f *fleet) messagesTo() map[string]int {
	n := map[string]int{}
	for _, m := range f.sim.Messages() {
		n[m.ToUser]++
	}
	return n
}

// statusCount counts answers by HTTP status.
type statusCount map[int]int

// fiveHundreds counts the 500 answers (a 503 is the answer to a dependency failure).
func (s statusCount) fiveHundreds() int { return s[http.StatusInternalServerError] }
