package app

import (
	"context"
	"sync"
	"time"
)

// Outbox delivery: exactly once in effect, with any number of workers (replicas) on one database.
//   - A worker claims a few due messages with a lease of its own, renews each message's lease just
//     before sending it (a message whose lease ran out while earlier ones were sent may have been
//     taken over: it is skipped) and keeps renewing it while the send runs, so no other worker
//     takes a message over while it is being sent.
//   - Every send asks WeCom's duplicate check (outboxDedup): a resend of a message that was
//     delivered after all, when an answer was lost or a worker died before recording it, is
//     dropped by WeCom. A message whose attempt had an unknown outcome is resent only within that
//     window, then given up.
//   - "Sent" is recorded even when the database blinks: the mark is retried, never the send.
const (
	outboxBatch  = 10
	outboxLease  = time.Minute // Service.OutboxLease when zero
	outboxGiveUp = 48 * time.Hour
	// outboxDedup is the duplicate check window asked for on every send: WeCom's maximum.
	outboxDedup = 4 * time.Hour
	// outboxDedupMargin keeps the last resend of a possibly delivered message well inside it.
	outboxDedupMargin = 10 * time.Minute
)

// markRetries are the waits between attempts to record a sent message before it is left to the
// next round (pendingMarks).
var markRetries = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}

// pendingMarks are messages this process sent but could not yet record as sent.
type pendingMarks struct {
	mu  sync.Mutex
	ids map[int64]time.Time // message id -> when it was sent
}

func (s *Service) outboxLease() time.Duration {
	if s.OutboxLease > 0 {
		return s.OutboxLease
	}
	return outboxLease
}

// DeliverOutbox records the sends an earlier round could not record, then sends the messages
// that are due, and returns how many it sent.
func (s *Service) DeliverOutbox(ctx context.Context) (int, error) {
	s.flushMarks(ctx)
	owner, sent := newOwner(), 0
	for {
		now := s.now()
		msgs, err := s.Store.ClaimMessages(ctx, owner, now, now.Add(s.outboxLease()), outboxBatch)
		if err != nil {
			return sent, err
		}
		for _, m := range msgs {
			ok, err := s.deliver(ctx, owner, m)
			if err != nil {
				return sent, err
			}
			if ok {
				sent++
			}
		}
		if len(msgs) < outboxBatch {
			return sent, nil
		}
	}
}

// deliver sends one claimed message and records the outcome; it reports whether it sent it.
func (s *Service) deliver(ctx context.Context, owner string, m *OutboxMessage) (bool, error) {
	if s.marks.has(m.ID) {
		s.flushMarks(ctx) // sent already: only the record was missing
		return false, nil
	}
	lease := s.outboxLease()
	if err := s.Store.RenewMessageLease(ctx, m.ID, owner, s.now().Add(lease)); err != nil {
		if code := ErrorCode(err); code == ECONFLICT || code == ENOTFOUND {
			return false, nil // taken over by another worker after our lease ran out
		}
		return false, err
	}
	err := s.whileLeased(ctx, m.ID, owner, lease, func() error {
		return s.WeCom.SendText(ctx, m.ToUser, m.Content, outboxDedup)
	})
	if err != nil {
		return false, s.sendFailed(ctx, owner, m, err)
	}
	s.markSent(ctx, m.ID)
	return true, nil
}

// whileLeased runs send while renewing owner's lease on message id every third of lease.
func (s *Service) whileLeased(ctx context.Context, id int64, owner string, lease time.Duration, send func() error) error {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(lease/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lease/3)
				if err := s.Store.RenewMessageLease(rctx, id, owner, s.now().Add(lease)); err != nil {
					s.log().Warn("renew outbox lease during a send", "id", id, "err", err)
				}
				cancel()
			}
		}
	}()
	err := send()
	close(stop)
	<-done
	return err
}

// markSent records message id as sent, retrying while the database does not answer; if it still
// cannot, the mark is kept for the next round, and the message is never sent again from here.
func (s *Service) markSent(ctx context.Context, id int64) {
	at := s.now()
	ctx = context.WithoutCancel(ctx)
	err := s.Store.MarkMessageSent(ctx, id, at)
	for _, wait := range markRetries {
		if err == nil || ErrorCode(err) == ENOTFOUND {
			return
		}
		time.Sleep(wait)
		err = s.Store.MarkMessageSent(ctx, id, at)
	}
	if err == nil || ErrorCode(err) == ENOTFOUND {
		return
	}
	s.log().Warn("outbox message sent but not yet recorded; retrying the record", "id", id, "err", err)
	s.marks.add(id, at)
}

// flushMarks records the sends an earlier round could not record.
func (s *Service) flushMarks(ctx context.Context) {
	for id, at := range s.marks.snapshot() {
		if err := s.Store.MarkMessageSent(ctx, id, at); err == nil || ErrorCode(err) == ENOTFOUND {
			s.marks.remove(id)
		}
	}
}

// sendFailed records a failed send and when to try again: with growing delays for 48 h, but a
// message that may have been delivered (an attempt with an unknown outcome) only within WeCom's
// duplicate check window from that attempt, so that a resend is never delivered twice.
func (s *Service) sendFailed(ctx context.Context, owner string, m *OutboxMessage, err error) error {
	now := s.now()
	var unsureAt time.Time
	first := m.UnsureAt
	if isUnknown(err) {
		unsureAt = now
		if first == nil {
			first = &now
		}
	}
	next := now.Add(outboxBackoff(m.Attempts + 1))
	switch {
	case now.Sub(m.CreatedAt) > outboxGiveUp:
		next = time.Time{}
		s.log().Error("outbox message given up", "id", m.ID, "to", m.ToUser, "err", err)
	case first != nil && next.After(first.Add(outboxDedup-outboxDedupMargin)):
		next = time.Time{}
		s.log().Error("outbox message given up: it may have been delivered, and a resend now would not be de-duplicated", "id", m.ID, "to", m.ToUser, "err", err)
	default:
		s.log().Warn("outbox send failed; will retry", "id", m.ID, "to", m.ToUser, "attempt", m.Attempts+1, "err", err)
	}
	err = s.Store.MarkMessageFailed(ctx, m.ID, owner, err.Error(), next, unsureAt)
	if ErrorCode(err) == ECONFLICT {
		return nil // taken over meanwhile: the other worker's outcome stands
	}
	return err
}

// outboxBackoff is 10 s doubling per attempt, capped at 30 minutes.
func outboxBackoff(attempt int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < attempt && d < 30*time.Minute; i++ {
		d *= 2
	}
	return min(d, 30*time.Minute)
}

func (p *pendingMarks) add(id int64, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ids == nil {
		p.ids = map[int64]time.Time{}
	}
	p.ids[id] = at
}

func (p *pendingMarks) has(id int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.ids[id]
	return ok
}

func (p *pendingMarks) remove(id int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.ids, id)
}

func (p *pendingMarks) snapshot() map[int64]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int64]time.Time, len(p.ids))
	for id, at := range p.ids {
		out[id] = at
	}
	return out
}
