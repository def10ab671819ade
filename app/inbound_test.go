package app_test

import (
	"testing"

	"github.com/wecampus/wecampus/app"
)

// TestInboundStored: the deliveries HandleInbound stores (and so may fail on the database) are
// exactly the events with effects; replies are answered from memory.
func TestInboundStored(t *testing.T) {
	for _, tc := range []struct {
		in   app.Inbound
		want bool
	}{
		{app.Inbound{MsgType: "event", Event: "subscribe"}, true},
		{app.Inbound{Channel: app.ChannelContacts, MsgType: "event", Event: "subscribe"}, false},
		{app.Inbound{MsgType: "event", Event: "change_contact", ChangeType: "update_user"}, true},
		{app.Inbound{Channel: app.ChannelContacts, MsgType: "event", Event: "change_contact", ChangeType: "delete_user"}, true},
		{app.Inbound{MsgType: "event", Event: "click", EventKey: "HELP"}, false},
		{app.Inbound{MsgType: "text", Content: "绑定"}, false},
		{app.Inbound{MsgType: "event", Event: "enter_agent"}, false},
	} {
		if got := tc.in.Stored(); got != tc.want {
			t.Errorf("%s on %q: Stored %v, want %v", tc.in.Kind(), tc.in.Channel, got, tc.want)
		}
	}
}
