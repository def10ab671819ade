package app

import (
	"strconv"
	"strings"
)

// Callback channels: the app's own callback and the 通讯录同步 event server.
const (
	ChannelApp      = "app"
	ChannelContacts = "contacts"
)

// Inbound is a decrypted WeCom callback message or event, independent of its XML form.
type Inbound struct {
	Channel    string // ChannelApp or ChannelContacts
	ToUser     string // corp id
	FromUser   string // member userid, or "sys" for change_contact
	CreateTime int64  // unix seconds
	MsgType    string // text, event, image, ...
	MsgID      string // messages only
	AgentID    string

	Content  string // text messages
	Event    string // subscribe, unsubscribe, enter_agent, click, view, change_contact, ...
	EventKey string // click: the menu key; view: the URL

	// change_contact
	ChangeType string // create_user, update_user, delete_user
	UserID     string
	NewUserID  string
	Name       string
	Mobile     string
	Status     int // 0 when absent; 1 active, 2 disabled, 4 not yet joined, 5 quit
}

// DedupKey identifies a delivery for de-duplication of WeCom's retries (CONTRACT §5): the MsgId
// of a message, or FromUserName+CreateTime+Event(+ChangeType+UserID) of an event. For
// change_contact the changed fields with effects (NewUserID, Mobile, Status) are part of the key
// too: a retry repeats them verbatim, while two different changes of one member within the same
// second (an activation, then a userid change) must both apply.
func (in *Inbound) DedupKey() string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString(in.Channel)
	if in.MsgID != "" && in.MsgType != "event" {
		b.WriteString(":msg:")
		b.WriteString(in.MsgID)
		return b.String()
	}
	b.WriteString(":ev:")
	b.WriteString(in.FromUser)
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(in.CreateTime, 10))
	b.WriteByte(':')
	b.WriteString(in.Event)
	if in.Event == "change_contact" {
		b.WriteByte(':')
		b.WriteString(in.ChangeType)
		b.WriteByte(':')
		b.WriteString(in.UserID)
		if in.NewUserID != "" || in.Mobile != "" || in.Status != 0 {
			b.WriteByte(':')
			b.WriteString(in.NewUserID)
			b.WriteByte(':')
			b.WriteString(in.Mobile)
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(in.Status))
		}
	}
	return b.String()
}

// Stored reports whether HandleInbound applies in in a database transaction: the events with
// side effects (change_contact on either channel, subscribe on the app's). Everything else is
// answered from memory.
func (in *Inbound) Stored() bool {
	return in.MsgType == "event" && (in.Event == "change_contact" || (in.Event == "subscribe" && in.Channel != ChannelContacts))
}

// Kind is a short label for metrics: the event name, or the message type.
func (in *Inbound) Kind() string {
	switch {
	case in.MsgType == "event" && in.Event == "change_contact":
		return "change_contact." + in.ChangeType
	case in.MsgType == "event":
		return in.Event
	default:
		return in.MsgType
	}
}

// Reply is a passive reply to a callback. A zero Reply means "no reply" (empty 200 body).
type Reply struct {
	Text string
}

// Empty reports whether there is nothing to send back.
func (r Reply) Empty() bool { return r.Text == "" }
