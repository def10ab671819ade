package redis

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLockTTL(t *testing.T) {
	if d := lockTTL(context.Background()); d != tokenLockDefault {
		t.Errorf("no deadline: %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if d := lockTTL(ctx); d < 5*time.Second || d > 5500*time.Millisecond {
		t.Errorf("5s deadline: %v, want about 5.5s", d)
	}
	short, cancel2 := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel2()
	if d := lockTTL(short); d != time.Second {
		t.Errorf("1ms deadline: %v, want the 1s floor", d)
	}
}

func TestGlobEscape(t *testing.T) {
	if got := globEscape(`a*b?c[d]e\f`); got != `a\*b\?c\[d\]e\\f` {
		t.Errorf("globEscape = %s", got)
	}
}

func TestUnavailableReply(t *testing.T) {
	for msg, want := range map[string]bool{
		"LOADING Redis is loading the dataset in memory":        true,
		"READONLY You can't write against a read only replica.": true,
		"ERR Error running script":                              false,
	} {
		if got := unavailableReply(errors.New(msg)); got != want {
			t.Errorf("%q: %v", msg, got)
		}
	}
}
