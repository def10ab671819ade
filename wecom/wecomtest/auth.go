package wecomtest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// authGetUserInfo implements auth/getuserinfo (doc 91023): a code works once and for 5 minutes.
func (s *Server) authGetUserInfo(q url.Values, _ []byte, _ *http.Request) reply {
	c := q.Get("code")
	if c == "" {
		return reply{code: 41008}
	}
	oc, ok := s.oauthCodes[c]
	delete(s.oauthCodes, c)
	if !ok || !s.now().Before(oc.expires) {
		return reply{code: 40029}
	}
	if oc.userID != "" {
		return reply{fields: map[string]any{"userid": oc.userID}}
	}
	return reply{fields: map[string]any{"openid": oc.openID}}
}

// authGetTfaInfo implements auth/get_tfa_info (doc 99499): the code works once and for 5
// minutes and yields the userid and a tfa_code for user/tfa_succ.
func (s *Server) authGetTfaInfo(_ url.Values, body []byte, _ *http.Request) reply {
	var req struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return reply{code: 40058}
	}
	tc, ok := s.tfaCodes[req.Code]
	delete(s.tfaCodes, req.Code)
	if !ok || !s.now().Before(tc.expires) {
		return reply{code: 40029}
	}
	tfa := randHex(16)
	s.tfaTokens[tfa] = &code{userID: tc.userID, expires: s.now().Add(codeTTL)}
	return reply{fields: map[string]any{"userid": tc.userID, "tfa_code": tfa}}
}

// userTfaSucc implements user/tfa_succ (doc 99500): the tfa_code must belong to the userid, works
// once and for 5 minutes; a member who had not joined becomes active.
func (s *Server) userTfaSucc(_ url.Values, body []byte, _ *http.Request) reply {
	var req struct {
		UserID  string `json:"userid"`
		TfaCode string `json:"tfa_code"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return reply{code: 40058}
	}
	t, ok := s.tfaTokens[req.TfaCode]
	if !ok || !strings.EqualFold(t.userID, req.UserID) {
		return reply{code: 40029}
	}
	if !s.now().Before(t.expires) {
		delete(s.tfaTokens, req.TfaCode)
		return reply{code: 40029}
	}
	m, ok := s.members[strings.ToLower(req.UserID)]
	if !ok {
		return reply{code: 60111}
	}
	delete(s.tfaTokens, req.TfaCode)
	return reply{after: s.activate(m)}
}

// userAuthSucc implements the legacy user/authsucc (doc 99521).
func (s *Server) userAuthSucc(q url.Values, _ []byte, _ *http.Request) reply {
	m, ok := s.members[strings.ToLower(q.Get("userid"))]
	if !ok {
		return reply{code: 60111}
	}
	return reply{after: s.activate(m)}
}
