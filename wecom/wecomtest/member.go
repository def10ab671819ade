package wecomtest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// validUserID applies user/create's userid rules (doc 90195): 1–64 bytes of digits, ASCII letters
// and _-@. starting with a digit or letter.
func validUserID(id string) int {
	if id == "" {
		return 40003
	}
	if len(id) > 64 {
		return 40058
	}
	for i, c := range []byte(id) {
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alnum && (i == 0 || !strings.ContainsRune("_-@.", rune(c))) {
			return 40003
		}
	}
	return 0
}

// validName: 1–64 characters (60112).
func validName(n string) int {
	if strings.TrimSpace(n) == "" || utf8.RuneCountInString(n) > 64 || !utf8.ValidString(n) {
		return 60112
	}
	return 0
}

// validMobile: digits, '+' and '-', at most 32 characters (60103).
func validMobile(m string) int {
	if m == "" || len(m) > 32 {
		return 60103
	}
	for _, c := range []byte(m) {
		if (c < '0' || c > '9') && c != '+' && c != '-' {
			return 60103
		}
	}
	return 0
}

// validDepartments: at least one id (60127), each known (60123). Callers hold s.mu.
func (s *Server) validDepartments(ids []int64) int {
	if len(ids) == 0 {
		return 60127
	}
	if len(ids) > 100 {
		return 60123
	}
	for _, id := range ids {
		if !s.validDepartment(id) {
			return 60123
		}
	}
	return 0
}

func (s *Server) validDepartment(id int64) bool {
	if s.departments == nil {
		return id > 0
	}
	return s.departments[id]
}

// checkNewMember validates a member to be created. Callers hold s.mu.
func (s *Server) checkNewMember(userID, name, mobile string, depts []int64) int {
	if c := validUserID(userID); c != 0 {
		return c
	}
	if _, ok := s.members[strings.ToLower(userID)]; ok {
		return 60102
	}
	if c := validName(name); c != 0 {
		return c
	}
	if mobile != "" {
		if c := validMobile(mobile); c != 0 {
			return c
		}
		if _, ok := s.byMobile[mobile]; ok {
			return 60104
		}
	}
	return s.validDepartments(depts)
}

// userCreate implements user/create (doc 90195). A missing to_invite means true; enable:0
// creates the member disabled, exactly as WeCom does.
func (s *Server) userCreate(_ url.Values, body []byte, _ *http.Request) reply {
	var req struct {
		UserID     string  `json:"userid"`
		Name       string  `json:"name"`
		Mobile     string  `json:"mobile"`
		Email      string  `json:"email"`
		Department []int64 `json:"department"`
		Enable     *int    `json:"enable"`
		ToInvite   *bool   `json:"to_invite"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return reply{code: 40058}
	}
	if req.Mobile == "" && req.Email == "" {
		return reply{code: 60129}
	}
	if c := s.checkNewMember(req.UserID, req.Name, req.Mobile, req.Department); c != 0 {
		return reply{code: c}
	}
	m := &member{Member: Member{UserID: req.UserID, Name: req.Name, Mobile: req.Mobile, Department: req.Department, Status: 4}}
	if req.Enable != nil {
		switch *req.Enable {
		case 0:
			m.Status, m.prevStatus = 2, 4
		case 1:
		default:
			return reply{code: 40058}
		}
	}
	m.ToInvite = req.ToInvite == nil || *req.ToInvite
	s.insert(m)
	if m.ToInvite {
		s.invites = append(s.invites, Invite{UserID: m.UserID, Source: "create", At: s.now()})
	}
	return reply{msg: "created"}
}

// userUpdate implements user/update (doc 90197): omitted fields are unchanged, mobile is ignored
// for an activated member, new_userid works once and only for a system-generated userid.
func (s *Server) userUpdate(_ url.Values, body []byte, _ *http.Request) reply {
	var req struct {
		UserID     string   `json:"userid"`
		NewUserID  *string  `json:"new_userid"`
		Name       *string  `json:"name"`
		Mobile     *string  `json:"mobile"`
		Department *[]int64 `json:"department"`
		Enable     *int     `json:"enable"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return reply{code: 40058}
	}
	if req.UserID == "" {
		return reply{code: 40003}
	}
	m, ok := s.members[strings.ToLower(req.UserID)]
	if !ok {
		return reply{code: 60111}
	}
	// Validate everything first: a failed update changes nothing.
	if req.Name != nil {
		if c := validName(*req.Name); c != 0 {
			return reply{code: c}
		}
	}
	setMobile := req.Mobile != nil && m.Status != 1 && *req.Mobile != m.Mobile
	if setMobile && *req.Mobile != "" {
		if c := validMobile(*req.Mobile); c != 0 {
			return reply{code: c}
		}
		if _, taken := s.byMobile[*req.Mobile]; taken {
			return reply{code: 60104}
		}
	}
	if req.Department != nil {
		if c := s.validDepartments(*req.Department); c != 0 {
			return reply{code: c}
		}
	}
	rename := req.NewUserID != nil && *req.NewUserID != "" && *req.NewUserID != m.UserID
	if rename {
		if c := validUserID(*req.NewUserID); c != 0 {
			return reply{code: c}
		}
		if !m.Renamable {
			return reply{code: 301036}
		}
		if other, taken := s.members[strings.ToLower(*req.NewUserID)]; taken && other != m {
			return reply{code: 60102}
		}
	}
	if req.Enable != nil && *req.Enable != 0 && *req.Enable != 1 {
		return reply{code: 40058}
	}

	s.remove(m)
	if req.Name != nil {
		m.Name = *req.Name
	}
	if setMobile {
		m.Mobile = *req.Mobile
	}
	if req.Department != nil {
		m.Department = *req.Department
	}
	if rename {
		m.UserID = *req.NewUserID
		m.Renamable = false
	}
	if req.Enable != nil {
		switch {
		case *req.Enable == 0 && m.Status != 2:
			m.prevStatus, m.Status = m.Status, 2
		case *req.Enable == 1 && m.Status == 2:
			m.Status = m.prevStatus
			if m.Status == 0 {
				m.Status = 1
			}
		}
	}
	s.insert(m)
	return reply{msg: "updated"}
}

// userGet implements user/get (doc 90196).
func (s *Server) userGet(q url.Values, _ []byte, _ *http.Request) reply {
	m, ok := s.members[strings.ToLower(q.Get("userid"))]
	if !ok {
		return reply{code: 60111}
	}
	enable := 1
	if m.Status == 2 {
		enable = 0
	}
	fields := map[string]any{
		"userid":     m.UserID,
		"name":       m.Name,
		"department": m.Department,
		"mobile":     m.Mobile,
		"status":     m.Status,
		"enable":     enable,
	}
	if len(m.Department) > 0 {
		fields["main_department"] = m.Department[0]
	}
	return reply{fields: fields}
}

// userDelete implements user/delete (doc 90198).
func (s *Server) userDelete(q url.Values, _ []byte, _ *http.Request) reply {
	m, ok := s.members[strings.ToLower(q.Get("userid"))]
	if !ok {
		return reply{code: 60111}
	}
	s.remove(m)
	return reply{msg: "deleted"}
}

// userGetUserID implements user/getuserid (doc 95402); misses are counted.
func (s *Server) userGetUserID(_ url.Values, body []byte, _ *http.Request) reply {
	var req struct {
		Mobile string `json:"mobile"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return reply{code: 40058}
	}
	if req.Mobile == "" {
		return reply{code: 40063}
	}
	if c := validMobile(req.Mobile); c != 0 {
		return reply{code: c}
	}
	k, ok := s.byMobile[req.Mobile]
	if !ok {
		s.misses++
		return reply{code: 46004}
	}
	return reply{fields: map[string]any{"userid": s.members[k].UserID}}
}

// userListID implements user/list_id (doc 96067): one row per (member, department), paged by an
// opaque cursor.
func (s *Server) userListID(_ url.Values, body []byte, _ *http.Request) reply {
	var req struct {
		Cursor string `json:"cursor"`
		Limit  int    `json:"limit"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return reply{code: 40058}
	}
	if req.Limit < 0 || req.Limit > 10000 {
		return reply{code: 40058}
	}
	if req.Limit == 0 {
		req.Limit = 10000
	}
	start := 0
	if req.Cursor != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(req.Cursor, "sim-"))
		if err != nil || !strings.HasPrefix(req.Cursor, "sim-") || n < 0 {
			return reply{code: 40058}
		}
		start = n
	}
	type row struct {
		UserID     string `json:"userid"`
		Department int64  `json:"department"`
	}
	var rows []row
	for _, k := range s.sortedKeys() {
		m := s.members[k]
		for _, d := range m.Department {
			rows = append(rows, row{m.UserID, d})
		}
	}
	start = min(start, len(rows))
	end := min(start+req.Limit, len(rows))
	next := ""
	if end < len(rows) {
		next = "sim-" + strconv.Itoa(end)
	}
	page := rows[start:end]
	if page == nil {
		page = []row{}
	}
	return reply{fields: map[string]any{"next_cursor": next, "dept_user": page}}
}

// batchInvite implements batch/invite (doc 90975): members who already joined are skipped.
func (s *Server) batchInvite(_ url.Values, body []byte, _ *http.Request) reply {
	var req struct {
		User  []string `json:"user"`
		Party []int64  `json:"party"`
		Tag   []int64  `json:"tag"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return reply{code: 40058}
	}
	if len(req.User) == 0 && len(req.Party) == 0 && len(req.Tag) == 0 {
		return reply{code: 40063}
	}
	invalidUser, invalidParty, invalidTag := []string{}, []int64{}, []int64{}
	now := s.now()
	for _, id := range req.User {
		m, ok := s.members[strings.ToLower(id)]
		switch {
		case !ok:
			invalidUser = append(invalidUser, id)
		case m.Status != 1:
			s.invites = append(s.invites, Invite{UserID: m.UserID, Source: "batch", At: now})
		}
	}
	for _, d := range req.Party {
		if !s.validDepartment(d) {
			invalidParty = append(invalidParty, d)
		}
	}
	invalidTag = append(invalidTag, req.Tag...) // the simulator has no tags
	return reply{fields: map[string]any{"invaliduser": invalidUser, "invalidparty": invalidParty, "invalidtag": invalidTag}}
}

// joinQRCode implements corp/get_join_qrcode (doc 91714).
func (s *Server) joinQRCode(q url.Values, _ []byte, r *http.Request) reply {
	size := 1
	if v := q.Get("size_type"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 4 {
			return reply{code: 40058}
		}
		size = n
	}
	base := s.joinQRURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			scheme = "https"
		}
		prefix := r.URL.Path[:strings.Index(r.URL.Path, "/cgi-bin/")]
		base = scheme + "://" + r.Host + prefix + qrPath
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return reply{fields: map[string]any{"join_qrcode": base + sep + "size_type=" + strconv.Itoa(size)}}
}
