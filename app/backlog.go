package app

import (
	"context"
	"errors"
	"time"
)

// Backlog is the work the service has accepted but not finished: what the outbox and intent
// alerts watch (deploy/prometheus/alerts.yml).
type Backlog struct {
	// OutboxPending counts app messages not sent yet and not given up on.
	OutboxPending int
	// OutboxOldest is when the oldest of them was queued; zero when there is none.
	OutboxOldest time.Time
	// IntentsOpen counts open intents: WeCom member writes whose outcome is not settled yet.
	IntentsOpen int
	// IntentOldest is when the oldest of them was opened; zero when there is none.
	IntentOldest time.Time
	// At is when the backlog was read, on the service's clock (Service.Backlog sets it).
	At time.Time
}

// OutboxAge is how long the oldest pending message has waited at At; 0 when there is none.
func (b Backlog) OutboxAge() time.Duration { return ageAt(b.At, b.OutboxOldest) }

// IntentAge is how long the oldest open intent has been open at At; 0 when there is none.
func (b Backlog) IntentAge() time.Duration { return ageAt(b.At, b.IntentOldest) }

func ageAt(at, since time.Time) time.Duration {
	if since.IsZero() || at.Before(since) {
		return 0
	}
	return at.Sub(since)
}

// Backlog reads the unfinished work from the store: a count and the oldest row per kind, cheap
// enough for a metrics scrape (which should still cache it).
func (s *Service) Backlog(ctx context.Context) (Backlog, error) {
	if s.Store == nil {
		return Backlog{}, errors.New("app: backlog: no store")
	}
	b, err := s.Store.Backlog(ctx)
	if err != nil {
		return Backlog{}, err
	}
	b.At = s.now()
	return b, nil
}
