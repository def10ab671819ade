package callback

import (
	"errors"
	"strconv"
	"strings"

	"github.com/wecampus/wecampus/app"
)

var (
	errNoMsgType = errors.New("xml: no MsgType")
	errNumber    = errors.New("xml: CreateTime or Status is not an integer")
)

// Bits of the fields parseInbound maps, for duplicate detection.
const (
	fieldToUser = 1 << iota
	fieldFromUser
	fieldCreateTime
	fieldMsgType
	fieldMsgID
	fieldAgentID
	fieldContent
	fieldEvent
	fieldEventKey
	fieldChangeType
	fieldUserID
	fieldNewUserID
	fieldName
	fieldMobile
	fieldStatus
)

// parseInbound parses the decrypted XML of a message or event (接收消息格式 doc 90239, 接收事件格式
// doc 90240, 成员变更通知 doc 90970) into an app.Inbound. Text messages, menu click/view,
// enter_agent, subscribe/unsubscribe and change_contact fill their fields; any other type keeps
// its MsgType and Event. Unknown elements are skipped, a repeated known element or one with child
// elements is an error, and MsgType is required. The strings of the result are substrings of src
// unless they had to be decoded.
func parseInbound(src, channel string) (*app.Inbound, error) {
	s := scanner[string]{src: src}
	if err := s.open(); err != nil {
		return nil, err
	}
	in := &app.Inbound{Channel: channel}
	var seen uint32
	for {
		name, value, nested, ok, err := s.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		var bit uint32
		var dst *string
		switch name {
		case "ToUserName":
			bit, dst = fieldToUser, &in.ToUser
		case "FromUserName":
			bit, dst = fieldFromUser, &in.FromUser
		case "CreateTime":
			bit = fieldCreateTime
		case "MsgType":
			bit, dst = fieldMsgType, &in.MsgType
		case "MsgId":
			bit, dst = fieldMsgID, &in.MsgID
		case "AgentID":
			bit, dst = fieldAgentID, &in.AgentID
		case "Content":
			bit, dst = fieldContent, &in.Content
		case "Event":
			bit, dst = fieldEvent, &in.Event
		case "EventKey":
			bit, dst = fieldEventKey, &in.EventKey
		case "ChangeType":
			bit, dst = fieldChangeType, &in.ChangeType
		case "UserID":
			bit, dst = fieldUserID, &in.UserID
		case "NewUserID":
			bit, dst = fieldNewUserID, &in.NewUserID
		case "Name":
			bit, dst = fieldName, &in.Name
		case "Mobile":
			bit, dst = fieldMobile, &in.Mobile
		case "Status":
			bit = fieldStatus
		default:
			continue
		}
		switch {
		case nested:
			return nil, errChildField
		case seen&bit != 0:
			return nil, errDuplicate
		case len(value) > maxField:
			return nil, errTooLong
		}
		seen |= bit
		switch bit {
		case fieldCreateTime:
			if in.CreateTime, err = parseInt(value, 64); err != nil {
				return nil, err
			}
		case fieldStatus:
			n, err := parseInt(value, strconv.IntSize)
			if err != nil {
				return nil, err
			}
			in.Status = int(n)
		default:
			*dst = value
		}
	}
	if in.MsgType == "" {
		return nil, errNoMsgType
	}
	return in, nil
}

// parseInt parses an integer element the way encoding/xml does: empty is 0, surrounding
// white space is ignored.
func parseInt(s string, bits int) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, bits)
	if err != nil {
		return 0, errNumber
	}
	return n, nil
}

// EventXML renders in as the plaintext XML WeCom encrypts into a callback (doc 90239/90240/90970):
// strings in CDATA, CreateTime/MsgId/Status as numbers, empty optional fields left out (EventKey
// is kept for events other than change_contact, as WeCom sends it). It is the inverse of the
// parsing in Codec.Open — Open of EncryptEvent(EventXML(in)) gives back in, Channel aside — and is
// meant for simulators and tests. A nil in gives nil.
func EventXML(in *app.Inbound) []byte {
	if in == nil {
		return nil
	}
	b := make([]byte, 0, 256+len(in.Content))
	b = append(b, "<xml>"...)
	b = appendElem(b, "ToUserName", in.ToUser)
	b = appendElem(b, "FromUserName", in.FromUser)
	b = append(b, "<CreateTime>"...)
	b = strconv.AppendInt(b, in.CreateTime, 10)
	b = append(b, "</CreateTime>"...)
	b = appendElem(b, "MsgType", in.MsgType)
	if in.Content != "" {
		b = appendElem(b, "Content", in.Content)
	}
	if in.MsgID != "" {
		b = appendPlainElem(b, "MsgId", in.MsgID)
	}
	if in.Event != "" {
		b = appendElem(b, "Event", in.Event)
	}
	if in.EventKey != "" || in.MsgType == "event" && in.Event != "" && in.Event != "change_contact" {
		b = appendElem(b, "EventKey", in.EventKey)
	}
	for _, f := range [...]struct{ name, value string }{
		{"ChangeType", in.ChangeType},
		{"UserID", in.UserID},
		{"NewUserID", in.NewUserID},
		{"Name", in.Name},
		{"Mobile", in.Mobile},
	} {
		if f.value != "" {
			b = appendElem(b, f.name, f.value)
		}
	}
	if in.Status != 0 {
		b = append(b, "<Status>"...)
		b = strconv.AppendInt(b, int64(in.Status), 10)
		b = append(b, "</Status>"...)
	}
	if in.AgentID != "" {
		b = appendPlainElem(b, "AgentID", in.AgentID)
	}
	return append(b, "</xml>"...)
}
