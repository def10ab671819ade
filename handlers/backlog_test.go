package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/wecampus/wecampus/app"
)

// TestMetricsBacklog: /metrics carries the backlog gauges read from the real store.
func TestMetricsBacklog(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.db.EnqueueMessage(ctx, app.OutboxMessage{DedupKey: "welcome:1", ToUser: "u1", Content: "欢迎"}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.CreateIntent(ctx, &app.Intent{Op: app.OpBind, Number: "20250001", UserID: "20250001"}); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodGet, "/metrics", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.status)
	}
	for _, want := range []string{
		"\nwecampus_database_up 1\n",
		"\nwecampus_outbox_pending 1\n",
		"\nwecampus_intents_open 1\n",
		"\nwecampus_outbox_oldest_pending_seconds ",
		"\nwecampus_intent_oldest_open_seconds ",
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %q", strings.TrimSpace(want))
		}
	}
}
