package wecomtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// batchDeleteMax is the most userids user/batchdelete accepts (doc 90199).
const batchDeleteMax = 200

// userBatchDelete implements user/batchdelete (doc 90199), all or nothing like WeCom: an empty
// list is 40063, more than 200 userids 40058, a malformed userid 40003 and one that names no
// member 60111; the first bad userid fails the whole call and nobody is deleted. A userid listed
// twice is deleted once.
func (s *Server) userBatchDelete(_ url.Values, body []byte, _ *http.Request) reply {
	var req struct {
		UserIDList []string `json:"useridlist"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return reply{code: 40058}
	}
	switch {
	case len(req.UserIDList) == 0:
		return reply{code: 40063}
	case len(req.UserIDList) > batchDeleteMax:
		return reply{code: 40058}
	}
	targets := make(map[string]*member, len(req.UserIDList))
	for _, id := range req.UserIDList {
		if c := validUserID(id); c != 0 {
			return reply{code: c}
		}
		m, ok := s.members[strings.ToLower(id)]
		if !ok {
			return reply{code: 60111}
		}
		targets[strings.ToLower(id)] = m
	}
	for _, m := range targets {
		s.remove(m)
	}
	return reply{msg: "deleted"}
}

// RemoveMember deletes a member directly, as an admin does in the WeCom console (no change
// event).
func (s *Server) RemoveMember(userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.members[strings.ToLower(userID)]
	if !ok {
		return fmt.Errorf("wecomtest: remove member: no member %q", userID)
	}
	s.remove(m)
	return nil
}
