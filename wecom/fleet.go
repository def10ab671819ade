package wecom

import (
	"context"
	"errors"
	"time"

	"github.com/wecampus/wecampus/app"
)

// TokenStore shares access tokens among the replicas of a fleet, so that the fleet calls
// gettoken once per secret and token lifetime (package redis implements it). The Client keeps
// each token in its process-local cache as well, for as long as the store says it is valid, so
// most calls never reach the store.
type TokenStore interface {
	// Token returns the token stored under key and how long it stays valid; when none is stored,
	// one replica calls fetch (which returns a fresh token and how long to keep it) and the
	// others wait for its result. An error of fetch is returned as it is. A store that cannot
	// reach its backend calls fetch itself.
	Token(ctx context.Context, key string, fetch func(context.Context) (string, time.Duration, error)) (string, time.Duration, error)
	// DropToken deletes the token under key if it is still bad, never a fresher one.
	DropToken(ctx context.Context, key, bad string) error
}

// WithTokenStore shares the access tokens with the other replicas through s.
func WithTokenStore(s TokenStore) Option { return func(o *clientOptions) { o.tokens = s } }

// fromStore returns the token from the shared store and caches it locally for as long as the
// store says it is valid. Callers hold the single-flight lock.
func (t *tokSource) fromStore(ctx context.Context) (string, error) {
	tok, ttl, err := t.shared.Token(ctx, t.key, t.fetchTTL)
	if err != nil {
		var we *app.WeComError
		if !errors.As(err, &we) { // gave up waiting for another replica's refresh
			err = &app.WeComError{Op: "gettoken", Unknown: true, Msg: "waiting for token: " + err.Error()}
		}
		return "", err
	}
	if ttl > 0 {
		if err := t.cache.Set(t.key, tok, ttl); err != nil {
			t.log.Warn("wecom: cache token", "token", t.which, "err", err)
		}
	}
	return tok, nil
}
