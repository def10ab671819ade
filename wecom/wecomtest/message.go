package wecomtest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wecampus/wecampus/app"
)

// agentCode checks an agentid against the app's: 40056 when invalid, 301002 when it belongs to
// another app. Callers hold s.mu.
func (s *Server) agentCode(raw string) int {
	id, err := strconv.ParseInt(strings.Trim(raw, `"`), 10, 64)
	switch {
	case err != nil || id <= 0:
		return 40056
	case id != s.agentID:
		return 301002
	}
	return 0
}

// messageSend implements message/send (doc 90236), recording one Message per valid recipient.
func (s *Server) messageSend(_ url.Values, body []byte, _ *http.Request) reply {
	var req struct {
		ToUser  string          `json:"touser"`
		ToParty string          `json:"toparty"`
		ToTag   string          `json:"totag"`
		MsgType string          `json:"msgtype"`
		AgentID json.RawMessage `json:"agentid"`
		Text    struct {
			Content string `json:"content"`
		} `json:"text"`
		DuplicateCheck    int   `json:"enable_duplicate_check"`
		DuplicateInterval int64 `json:"duplicate_check_interval"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return reply{code: 40058}
	}
	if c := s.agentCode(string(req.AgentID)); c != 0 {
		return reply{code: c}
	}
	switch req.MsgType {
	case "text":
		if req.Text.Content == "" {
			return reply{code: 44004}
		}
	case "textcard", "news", "markdown", "image", "voice", "video", "file", "template_card":
	default:
		return reply{code: 40008}
	}
	if req.ToUser == "" && req.ToParty == "" && req.ToTag == "" {
		return reply{code: 82001}
	}
	now := s.now()
	var valid, invalid []string
	if req.ToUser == "@all" {
		valid = []string{"@all"}
	} else if req.ToUser != "" {
		for _, id := range strings.Split(req.ToUser, "|") {
			if m, ok := s.members[strings.ToLower(id)]; ok {
				valid = append(valid, m.UserID)
			} else {
				invalid = append(invalid, strings.ToLower(id))
			}
		}
	}
	if len(valid) == 0 && req.ToParty == "" && req.ToTag == "" {
		return reply{code: 81013}
	}
	agent, _ := strconv.ParseInt(strings.Trim(string(req.AgentID), `"`), 10, 64) // checked above
	content := req.Text.Content
	if req.MsgType != "text" {
		content = string(body)
	}
	key := strings.Join([]string{strconv.FormatInt(agent, 10), req.ToUser, req.ToParty, req.ToTag, req.MsgType, content}, "\x00")
	if req.DuplicateCheck == 1 && s.duplicate(key, req.DuplicateInterval) {
		return reply{fields: map[string]any{"invaliduser": "", "invalidparty": "", "invalidtag": "", "unlicenseduser": "", "msgid": randHex(12)}}
	}
	for _, to := range valid {
		s.messages = append(s.messages, Message{
			AgentID: agent, ToUser: to, MsgType: req.MsgType, Content: req.Text.Content,
			Body: append([]byte(nil), body...), At: now,
		})
	}
	return reply{fields: map[string]any{
		"invaliduser": strings.Join(invalid, "|"), "invalidparty": "", "invalidtag": "",
		"unlicenseduser": "", "msgid": randHex(12),
	}}
}

// duplicate applies WeCom's duplicate check (doc 90236) to the message key (app, recipients,
// type and content): one identical to a message accepted within interval seconds (default 1800,
// at most 4 h) is answered ok but not delivered. Callers hold s.mu.
func (s *Server) duplicate(key string, interval int64) bool {
	if interval <= 0 {
		interval = 1800
	}
	interval = min(interval, 4*3600)
	now := s.now()
	if last, ok := s.lastSent[key]; ok && now.Sub(last) < time.Duration(interval)*time.Second {
		s.duplicates++
		return true
	}
	if s.lastSent == nil {
		s.lastSent = map[string]time.Time{}
	}
	s.lastSent[key] = now
	return false
}

// menuTypes are the valid button types (doc 90231); all but view and view_miniprogram need a key.
var menuTypes = map[string]bool{
	"click": true, "view": true, "scancode_push": true, "scancode_waitmsg": true, "pic_sysphoto": true,
	"pic_photo_or_album": true, "pic_weixin": true, "location_select": true, "view_miniprogram": true,
}

// buttonCode validates one leaf button. sub selects the sub-button errcodes (40024–40027) instead
// of the top-level ones (40017–40020).
func buttonCode(b app.MenuButton, sub bool) int {
	typ, name, key, url, maxName := 40017, 40018, 40019, 40020, 16
	if sub {
		typ, name, key, url, maxName = 40024, 40025, 40026, 40027, 40
	}
	if b.Name == "" || len(b.Name) > maxName {
		return name
	}
	if !menuTypes[b.Type] {
		return typ
	}
	switch b.Type {
	case "view":
		if b.URL == "" || len(b.URL) > 1024 {
			return url
		}
	case "view_miniprogram":
	default:
		if b.Key == "" || len(b.Key) > 128 {
			return key
		}
	}
	return 0
}

// menuCode validates a whole menu: 1–3 buttons, 1–5 sub-buttons each, two levels.
func menuCode(buttons []app.MenuButton) int {
	if len(buttons) == 0 || len(buttons) > 3 {
		return 40016
	}
	for _, b := range buttons {
		if len(b.SubButton) == 0 {
			if c := buttonCode(b, false); c != 0 {
				return c
			}
			continue
		}
		if b.Name == "" || len(b.Name) > 16 {
			return 40018
		}
		if len(b.SubButton) > 5 {
			return 40023
		}
		for _, sb := range b.SubButton {
			if len(sb.SubButton) > 0 {
				return 40022
			}
			if c := buttonCode(sb, true); c != 0 {
				return c
			}
		}
	}
	return 0
}

// menuCreate implements menu/create (doc 90231).
func (s *Server) menuCreate(q url.Values, body []byte, _ *http.Request) reply {
	if c := s.agentCode(q.Get("agentid")); c != 0 {
		return reply{code: c}
	}
	var req struct {
		Button []app.MenuButton `json:"button"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return reply{code: 40058}
	}
	if c := menuCode(req.Button); c != 0 {
		return reply{code: c}
	}
	s.menus[s.agentID] = req.Button
	return reply{}
}

// menuGet implements menu/get (doc 90232): 46003 when no menu is set.
func (s *Server) menuGet(q url.Values, _ []byte, _ *http.Request) reply {
	if c := s.agentCode(q.Get("agentid")); c != 0 {
		return reply{code: c}
	}
	menu, ok := s.menus[s.agentID]
	if !ok {
		return reply{code: 46003}
	}
	return reply{fields: map[string]any{"button": menu}}
}

// menuDelete implements menu/delete (doc 90233).
func (s *Server) menuDelete(q url.Values, _ []byte, _ *http.Request) reply {
	if c := s.agentCode(q.Get("agentid")); c != 0 {
		return reply{code: c}
	}
	delete(s.menus, s.agentID)
	return reply{}
}
