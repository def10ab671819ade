package app

import (
	"context"
	"time"
)

// Limit is one rate limit: at most Max events for Key in any Window (a sliding window).
type Limit struct {
	Key    string // e.g. "sms:mobile:13800000000"; the implementation adds its own prefix
	Max    int
	Window time.Duration
}

// Decision is the answer of Limiter.Allow.
type Decision struct {
	OK bool
	// Refused is the index, in the limits given to Allow, of the first full limit (when !OK).
	Refused int
	// RetryAfter is how long until the refused limit has room again (when !OK).
	RetryAfter time.Duration
	// ID names the event counted (when OK), for Limiter.Undo.
	ID string
}

// Limiter holds rate limits for the whole fleet of replicas (package redis). It is optional: the
// database-enforced limits are the floor, and the Limiter makes them exact across replicas that
// race. Any error means the fleet limits are unavailable right now (Redis unreachable); callers
// then rely on the database's checks alone and go on.
type Limiter interface {
	// Allow counts one event against every limit at once, or against none: if one of them is
	// full, nothing is counted and the Decision names it.
	Allow(ctx context.Context, limits ...Limit) (Decision, error)
	// Undo removes the event id (Decision.ID) from limits, e.g. the cooldown of an SMS the
	// provider did not send.
	Undo(ctx context.Context, id string, limits ...Limit) error
}
