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
)

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
