package app

import (
	"context"
	"time"
)

// Outbox delivery policy: a failed send is retried with growing delays and given up on only after
// outboxGiveUp; a claimed message is leased so that two replicas never send it twice.
const (
	outboxBatch  = 20
	outboxLease  = time.Minute
	outboxGiveUp = 48 * time.Hour
	inboundKeep  = 24 * time.Hour // de-dup records outlive WeCom's retries (seconds) by far
)

func (s *Service) wakeChan() chan struct{} {
	s.wakeOnce.Do(func() { s.wake = make(chan struct{}, 1) })
	return s.wake
}

// wakeOutbox nudges RunOutbox to deliver now rather than at its next tick.
func (s *Service) wakeOutbox() {
	select {
	case s.wakeChan() <- struct{}{}:
	default:
	}
}

// RunOutbox delivers queued app messages until ctx ends: at every tick, and at once after a
// callback queued one. It also resolves stale bind intents (every minute) and purges old
// callback de-duplication records (every hour).
func (s *Service) RunOutbox(ctx context.Context, tick time.Duration) {
	if tick <= 0 {
		tick = 5 * time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var lastPurge, lastRepair time.Time
	for {
		if _, err := s.DeliverOutbox(ctx); err != nil && ctx.Err() == nil {
			s.log().Error("outbox delivery", "err", err)
		}
		if now := s.now(); now.Sub(lastRepair) > time.Minute {
			if n, err := s.RepairIntents(ctx); err != nil && ctx.Err() == nil {
				s.log().Error("repair open bind intents", "err", err)
			} else if n > 0 {
				s.log().Warn("repaired open bind intents", "count", n)
			}
			lastRepair = now
		}
		if now := s.now(); now.Sub(lastPurge) > time.Hour {
			if _, err := s.Store.PurgeInbound(ctx, now.Add(-inboundKeep)); err != nil && ctx.Err() == nil {
				s.log().Error("purge callback de-dup records", "err", err)
			}
			lastPurge = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wakeChan():
		}
	}
}

// DeliverOutbox sends the messages that are due and returns how many were sent.
func (s *Service) DeliverOutbox(ctx context.Context) (int, error) {
	sent := 0
	for {
		now := s.now()
		msgs, err := s.Store.ClaimMessages(ctx, now, now.Add(outboxLease), outboxBatch)
		if err != nil {
			return sent, err
		}
		for _, m := range msgs {
			if err := s.deliver(ctx, m); err != nil {
				return sent, err
			}
			sent++
		}
		if len(msgs) < outboxBatch {
			return sent, nil
		}
	}
}

func (s *Service) deliver(ctx context.Context, m *OutboxMessage) error {
	err := s.WeCom.SendText(ctx, m.ToUser, m.Content)
	now := s.now()
	if err == nil {
		return s.Store.MarkMessageSent(ctx, m.ID, now)
	}
	next := now.Add(outboxBackoff(m.Attempts + 1))
	if now.Sub(m.CreatedAt) > outboxGiveUp {
		next = time.Time{}
		s.log().Error("outbox message given up", "id", m.ID, "to", m.ToUser, "err", err)
	} else {
		s.log().Warn("outbox send failed; will retry", "id", m.ID, "to", m.ToUser, "attempt", m.Attempts+1, "err", err)
	}
	return s.Store.MarkMessageFailed(ctx, m.ID, err.Error(), next)
}

// outboxBackoff is 10 s doubling per attempt, capped at 30 minutes.
func outboxBackoff(attempt int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < attempt && d < 30*time.Minute; i++ {
		d *= 2
	}
	return min(d, 30*time.Minute)
}
