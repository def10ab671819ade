package handlers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecampus/wecampus/app"
)

// The backlog gauges, read from the database on scrape (deploy/prometheus/alerts.yml watches
// them). Every replica reports the same numbers, so alerts take max() over instances.
var (
	descOutboxPending = prometheus.NewDesc("wecampus_outbox_pending",
		"App messages (welcome messages) queued and not sent yet; given-up ones are not counted.", nil, nil)
	descOutboxOldest = prometheus.NewDesc("wecampus_outbox_oldest_pending_seconds",
		"Age of the oldest message counted in wecampus_outbox_pending; 0 when there is none.", nil, nil)
	descIntentsOpen = prometheus.NewDesc("wecampus_intents_open",
		"Open intents: WeCom member writes whose outcome is not settled yet.", nil, nil)
	descIntentOldest = prometheus.NewDesc("wecampus_intent_oldest_open_seconds",
		"Age of the oldest open intent; 0 when there is none. The repair settles intents older than 2 minutes.", nil, nil)
	descDatabaseUp = prometheus.NewDesc("wecampus_database_up",
		"1 when the database answered the last backlog query, else 0 (the backlog gauges are then left out).", nil, nil)
)

// A scrape reads the backlog at most once per backlogTTL, within backlogTimeout: a scrape storm
// (several Prometheus servers, a dashboard refreshing) costs the database one read per TTL per
// replica, and a database that does not answer delays a scrape by backlogTimeout at most.
const (
	backlogTTL     = 10 * time.Second
	backlogTimeout = 2 * time.Second
)

// backlogCollector is the prometheus.Collector of the backlog gauges.
type backlogCollector struct {
	read func(ctx context.Context) (app.Backlog, error) // app.Service.Backlog
	now  func() time.Time                               // the cache's clock
	log  *slog.Logger

	mu   sync.Mutex // held during a read: concurrent scrapes wait for it and share its result
	at   time.Time  // when last read; zero before the first scrape
	last app.Backlog
	err  error
}

func newBacklogCollector(read func(ctx context.Context) (app.Backlog, error), log *slog.Logger) *backlogCollector {
	return &backlogCollector{read: read, now: time.Now, log: log}
}

// Describe implements prometheus.Collector.
func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOutboxPending, descOutboxOldest, descIntentsOpen, descIntentOldest, descDatabaseUp} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	b, err := c.backlog()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	if err != nil {
		gauge(descDatabaseUp, 0)
		return
	}
	gauge(descDatabaseUp, 1)
	gauge(descOutboxPending, float64(b.OutboxPending))
	gauge(descOutboxOldest, b.OutboxAge().Seconds())
	gauge(descIntentsOpen, float64(b.IntentsOpen))
	gauge(descIntentOldest, b.IntentAge().Seconds())
}

// backlog returns the cached backlog, reading it again once it is backlogTTL old. A failed read
// is cached too, so that an unreachable database is not asked again by every scrape.
func (c *backlogCollector) backlog() (app.Backlog, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && c.now().Sub(c.at) < backlogTTL {
		return c.last, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	c.last, c.err = c.read(ctx)
	c.at = c.now()
	if c.err != nil {
		c.log.Warn("metrics: backlog not read", "err", c.err)
	}
	return c.last, c.err
}
