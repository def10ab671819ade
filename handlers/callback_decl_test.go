package handlers_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/callback"
)

// TestCallbackXMLDeclaration: a leading <?xml …?> declaration, which a proxy or a future WeCom
// may add, is accepted end to end, on the POST body and inside the encrypted event, with a BOM
// and line breaks around it; anything else after "<?" is still a 400 that changes nothing.
func TestCallbackXMLDeclaration(t *testing.T) {
	const decl = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"
	e := newEnv(t)
	pending := e.createBinding("2021000001", "u1", "13800000001", app.StatusPending)
	active := e.createBinding("2021000002", "u2", "13800000002", app.StatusActive)
	now := time.Now().Unix()

	// deliver encrypts in for its route with inner before the event XML and outer before the
	// POST body (the signature covers only Encrypt, as with WeCom).
	deliver := func(in app.Inbound, inner, outer string) delivery {
		t.Helper()
		in.ToUser, in.CreateTime = testCorpID, now
		path, sender := "/wecom/callback", e.wecomApp
		if in.Channel == app.ChannelContacts {
			path, sender = "/wecom/contacts", e.wecomContacts
		}
		d := e.encrypt(path, sender, append([]byte(inner), callback.EventXML(&in)...), now)
		d.body = append([]byte(outer), d.body...)
		return d
	}
	help := app.Inbound{FromUser: "u1", MsgType: "event", Event: "click", EventKey: "HELP", AgentID: "1000002"}
	subscribe := app.Inbound{FromUser: "u1", MsgType: "event", Event: "subscribe", AgentID: "1000002"}
	deleteUser := app.Inbound{Channel: app.ChannelContacts, FromUser: "sys", MsgType: "event", Event: "change_contact",
		ChangeType: "delete_user", UserID: "u2"}

	t.Run("GarbageAfterLtQuestion", func(t *testing.T) {
		before := e.snapshot()
		for _, tt := range []struct{ name, inner, outer string }{
			{"OuterPI", "", "<?php echo 1 ?>"},
			{"OuterStylesheet", "", `<?xml-stylesheet href="a.xsl"?>`},
			{"OuterVersion11", "", `<?xml version="1.1"?>`},
			{"OuterGBK", "", `<?xml version="1.0" encoding="GBK"?>`},
			{"OuterUnterminated", "", `<?xml version="1.0"`},
			{"OuterTwice", "", decl + decl},
			{"OuterBinary", "", "<?\x00\xff\xfe?>"},
			{"InnerPI", "<?php echo 1 ?>", ""},
			{"InnerNoVersion", `<?xml encoding="UTF-8"?>`, decl},
			{"InnerAfterComment", "<!-- c -->" + decl, decl},
			{"InnerGarbage", "<?xml \x00garbage?>", ""},
		} {
			for _, in := range []app.Inbound{subscribe, deleteUser} {
				if r := e.post(deliver(in, tt.inner, tt.outer)); r.status != http.StatusBadRequest {
					t.Errorf("%s on %s: status %d, want 400", tt.name, in.Channel, r.status)
				}
			}
		}
		if after := e.snapshot(); after != before {
			t.Errorf("refused callbacks changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("HelpReply", func(t *testing.T) {
		r := e.post(deliver(help, decl, "\xef\xbb\xbf"+decl+"\r\n"))
		if r.status != http.StatusOK || len(r.body) == 0 {
			t.Fatalf("status %d body %q, want 200 with a reply", r.status, r.body)
		}
		x := e.openReply(e.wecomApp, r.body)
		if x.ToUserName != "u1" || x.MsgType != "text" || !strings.Contains(x.Content, testBaseURL+"/bind") {
			t.Errorf("reply %+v", x)
		}
	})

	t.Run("SubscribeActivates", func(t *testing.T) {
		if r := e.post(deliver(subscribe, "  "+decl, decl)); r.status != http.StatusOK || len(r.body) != 0 {
			t.Fatalf("status %d body %q, want 200 and an empty body", r.status, r.body)
		}
		if got := e.binding(pending.ID); got.Status != app.StatusActive {
			t.Errorf("status %s, want active", got.Status)
		}
		if msgs := e.deliverOutbox(); len(msgs) != 1 || msgs[0].ToUser != "u1" {
			t.Errorf("messages %+v, want one welcome to u1", msgs)
		}
	})

	t.Run("ContactsDeleteUser", func(t *testing.T) {
		if r := e.post(deliver(deleteUser, decl, decl)); r.status != http.StatusOK {
			t.Fatalf("status %d, want 200", r.status)
		}
		if got := e.binding(active.ID); got.Status != app.StatusUnbound {
			t.Errorf("status %s, want unbound", got.Status)
		}
	})
}
