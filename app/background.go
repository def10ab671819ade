package app

import (
	"context"
	"time"
)

// Background work: how often each step of RunBackground runs, and how long callback
// de-duplication records are kept.
const (
	defaultTick = 5 * time.Second
	repairEvery = 30 * time.Second // an intent a dead replica held is repaired within lease + this
	purgeEvery  = time.Hour
	inboundKeep = 24 * time.Hour // de-dup records outlive WeCom's retries (seconds) by far
)

// RunBackground runs the service's periodic work until ctx ends; each step logs its own failure
// and the loop goes on:
//   - DeliverOutbox at every tick (default 5 s), and at once after a callback queued a message;
//   - RepairIntents every 30 s (any replica: each intent is claimed by one);
//   - PurgeInboundSeen and the retention Purge every hour (retention.*; hourly so that SMS rows
//     lose their IP soon after the per-IP window no longer counts them).
func (s *Service) RunBackground(ctx context.Context, tick time.Duration) {
	if tick <= 0 {
		tick = defaultTick
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var lastRepair, lastPurge time.Time
	for {
		s.runStep(ctx, "outbox delivery", s.DeliverOutbox)
		if now := s.now(); now.Sub(lastRepair) > repairEvery {
			if n := s.runStep(ctx, "repair open bind intents", s.RepairIntents); n > 0 {
				s.log().Warn("repaired open bind intents", "count", n)
			}
			lastRepair = now
		}
		if now := s.now(); now.Sub(lastPurge) > purgeEvery {
			s.runStep(ctx, "purge callback de-dup records", s.PurgeInboundSeen)
			s.runStep(ctx, "retention purge", s.purgeNow)
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

// runStep runs one background step and logs its failure (unless ctx ended); it returns the
// step's count.
func (s *Service) runStep(ctx context.Context, what string, step func(context.Context) (int, error)) int {
	n, err := step(ctx)
	if err != nil && ctx.Err() == nil {
		s.log().Error(what, "err", err)
	}
	return n
}

// PurgeInboundSeen deletes the callback de-duplication records older than a day (WeCom retries
// for seconds) and returns how many it deleted.
func (s *Service) PurgeInboundSeen(ctx context.Context) (int, error) {
	n, err := s.Store.PurgeInbound(ctx, s.now().Add(-inboundKeep))
	return int(n), err
}

// purgeNow is Purge as a background step: it returns the number of records changed.
func (s *Service) purgeNow(ctx context.Context) (int, error) {
	counts, err := s.Purge(ctx, false)
	n := 0
	for _, c := range counts {
		n += c.Count
	}
	return n, err
}

func (s *Service) wakeChan() chan struct{} {
	s.wakeOnce.Do(func() { s.wake = make(chan struct{}, 1) })
	return s.wake
}

// wakeOutbox nudges RunBackground to deliver now rather than at its next tick.
func (s *Service) wakeOutbox() {
	select {
	case s.wakeChan() <- struct{}{}:
	default:
	}
}
