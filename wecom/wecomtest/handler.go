package wecomtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// tokenNeed says which access token an endpoint accepts (WECOM.md §0).
type tokenNeed int

const (
	needNone     tokenNeed = iota // gettoken
	needApp                       // app secret only: message/send, menu/*, auth/getuserinfo
	needContacts                  // 通讯录同步 secret only: member writes, getuserid, invite, join QR
	needEither                    // either secret: user/get, get_tfa_info, tfa_succ
)

// reply is an endpoint's answer: an errcode, extra JSON fields, and hooks to run after the lock.
type reply struct {
	code   int
	msg    string // errmsg on success; default "ok"
	fields map[string]any
	secret string // gettoken: the kind of token issued
	after  func()
}

type endpoint struct {
	need tokenNeed
	post bool
	fn   func(s *Server, q url.Values, body []byte, r *http.Request) reply
}

// endpoints lists the simulated APIs by path after /cgi-bin/.
var endpoints = map[string]endpoint{
	"gettoken":             {needNone, false, (*Server).getToken},
	"user/create":          {needContacts, true, (*Server).userCreate},
	"user/update":          {needContacts, true, (*Server).userUpdate},
	"user/get":             {needEither, false, (*Server).userGet},
	"user/delete":          {needContacts, false, (*Server).userDelete},
	"user/batchdelete":     {needContacts, true, (*Server).userBatchDelete},
	"user/getuserid":       {needContacts, true, (*Server).userGetUserID},
	"user/list_id":         {needContacts, true, (*Server).userListID},
	"user/authsucc":        {needContacts, false, (*Server).userAuthSucc},
	"user/tfa_succ":        {needEither, true, (*Server).userTfaSucc},
	"batch/invite":         {needContacts, true, (*Server).batchInvite},
	"corp/get_join_qrcode": {needContacts, false, (*Server).joinQRCode},
	"auth/getuserinfo":     {needApp, false, (*Server).authGetUserInfo},
	"auth/get_tfa_info":    {needEither, true, (*Server).authGetTfaInfo},
	"message/send":         {needApp, true, (*Server).messageSend},
	"menu/create":          {needApp, true, (*Server).menuCreate},
	"menu/get":             {needApp, false, (*Server).menuGet},
	"menu/delete":          {needApp, false, (*Server).menuDelete},
}

// qrPath is where Handler serves the placeholder join QR code image.
const qrPath = "/wecomtest/join_qrcode.svg"

// concurrencyCaps are the endpoints WeCom answers 45033 for beyond so many concurrent calls
// (WECOM.md §4).
var concurrencyCaps = map[string]int{"auth/get_tfa_info": 20, "user/tfa_succ": 20}

// Handler returns the simulator's HTTP handler. It serves /cgi-bin/... under any path prefix, so
// it can be mounted, e.g. at /wecomsim/ with api_base http://host/wecomsim.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, qrPath) {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = io.WriteString(w, qrSVG) // the client went away; nothing to do
		return
	}
	i := strings.Index(r.URL.Path, "/cgi-bin/")
	if i < 0 {
		http.NotFound(w, r)
		return
	}
	name := r.URL.Path[i+len("/cgi-bin/"):]
	ep, ok := endpoints[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return // the client went away
		}
	}
	q := r.URL.Query()

	s.mu.Lock()
	idx := len(s.calls)
	s.calls = append(s.calls, Call{Endpoint: name, Query: cloneValues(q), Body: body, At: s.now()})
	s.inFlight[name]++
	flying := s.inFlight[name]
	s.maxFlight[name] = max(s.maxFlight[name], flying)
	f, faulted := s.takeFault(name)
	s.calls[idx].Faulted = faulted
	latency := s.latency
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight[name]--
		s.mu.Unlock()
	}()

	if limit := concurrencyCaps[name]; limit > 0 && flying > limit {
		s.setCode(idx, 45033) // WeCom refuses at once, without applying the call
		writeReply(w, reply{code: 45033})
		return
	}

	if latency > 0 && !s.wait(r, latency) {
		return
	}
	if faulted {
		switch {
		case f.HTTPStatus != 0:
			http.Error(w, "simulated gateway failure", f.HTTPStatus)
			return
		case f.ErrCode != 0:
			if f.Latency > 0 && !s.wait(r, f.Latency) {
				return
			}
			s.setCode(idx, f.ErrCode)
			writeReply(w, reply{code: f.ErrCode})
			return
		case (f.Drop || f.Reset) && f.NotApplied:
			s.abort(w, r, f)
			return
		case f.ApplyAfter > 0 && !s.hold(f.ApplyAfter):
			return
		}
	}

	s.mu.Lock()
	var rep reply
	kind, code := s.checkToken(ep.need, q)
	switch {
	case code != 0:
		rep = reply{code: code}
	case ep.post && !json.Valid(body):
		rep = reply{code: 47001}
	default:
		rep = ep.fn(s, q, body, r)
	}
	if rep.secret != "" {
		kind = rep.secret
	}
	s.calls[idx].Secret = kind
	s.calls[idx].ErrCode = rep.code
	s.mu.Unlock()
	if rep.after != nil {
		rep.after()
	}

	if faulted {
		if f.Drop || f.Reset {
			s.abort(w, r, f)
			return
		}
		if f.Latency > 0 && !s.wait(r, f.Latency) {
			return
		}
	}
	writeReply(w, rep)
}

// wait sleeps d; it reports false when the client gave up or the server closed first.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closed:
		return false
	}
}

// hold sleeps d whatever the client does; it reports false when the server closed first.
func (s *Server) hold(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closed:
		return false
	}
}

// abort never answers: Reset closes the connection, Drop hangs until the client gives up.
func (s *Server) abort(w http.ResponseWriter, r *http.Request, f Fault) {
	if f.Reset {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close() // the point is to drop the connection
				return
			}
		}
		panic(http.ErrAbortHandler) // net/http closes the connection without logging
	}
	t := time.NewTimer(maxHang)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-s.closed:
	case <-t.C:
	}
}

func (s *Server) setCode(idx, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[idx].ErrCode = code
}

// checkToken validates access_token for an endpoint. Callers hold s.mu.
func (s *Server) checkToken(need tokenNeed, q url.Values) (kind string, code int) {
	if need == needNone {
		return "", 0
	}
	tok := q.Get("access_token")
	if tok == "" {
		return "", 41001
	}
	t, ok := s.tokens[tok]
	if !ok {
		return "", 40014
	}
	if !s.now().Before(t.expires) {
		return t.kind, 42001
	}
	switch {
	case need == needApp && t.kind != SecretApp, need == needContacts && t.kind != SecretContacts:
		return t.kind, 48002
	}
	return t.kind, 0
}

func writeReply(w http.ResponseWriter, rep reply) {
	out := make(map[string]any, len(rep.fields)+2)
	for k, v := range rep.fields {
		out[k] = v
	}
	out["errcode"] = rep.code
	switch {
	case rep.code != 0:
		out["errmsg"] = fmt.Sprintf("%s, hint: [%d_wecomtest], more info at https://open.work.weixin.qq.com/devtool/query?e=%d",
			errmsg(rep.code), time.Now().Unix(), rep.code)
	case rep.msg != "":
		out["errmsg"] = rep.msg
	default:
		out["errmsg"] = "ok"
	}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_, _ = w.Write(b) // the client went away; nothing to do
}

// errmsg is WeCom's short text for the errcodes the simulator answers (doc 90313).
func errmsg(code int) string {
	switch code {
	case -1:
		return "system busy"
	case 40001:
		return "invalid credential"
	case 40003:
		return "invalid UserID"
	case 40008:
		return "invalid message type"
	case 40013:
		return "invalid corpid"
	case 40014:
		return "invalid access_token"
	case 40016:
		return "invalid button size"
	case 40017:
		return "invalid button type"
	case 40018:
		return "invalid button name size"
	case 40019:
		return "invalid button key size"
	case 40020:
		return "invalid button url size"
	case 40022:
		return "invalid sub button level"
	case 40023:
		return "invalid sub button size"
	case 40024:
		return "invalid sub button type"
	case 40025:
		return "invalid sub button name size"
	case 40026:
		return "invalid sub button key size"
	case 40027:
		return "invalid sub button url size"
	case 40029:
		return "invalid code"
	case 40056:
		return "invalid agentid"
	case 40058:
		return "invalid parameter"
	case 40063:
		return "some parameters are empty"
	case 41001:
		return "access_token missing"
	case 41002:
		return "corpid missing"
	case 41004:
		return "corpsecret missing"
	case 41008:
		return "missing code"
	case 42001:
		return "access_token expired"
	case 44004:
		return "empty content"
	case 45009:
		return "api freq out of limit"
	case 46003:
		return "menu no exist"
	case 46004:
		return "user no exist"
	case 47001:
		return "data format error"
	case 48002:
		return "api forbidden"
	case 60102:
		return "UserID existed"
	case 60103:
		return "mobile invalid"
	case 60104:
		return "mobile existed"
	case 60111:
		return "UserID not found"
	case 60112:
		return "invalid username"
	case 60123:
		return "invalid party id"
	case 60127:
		return "missing department"
	case 60129:
		return "missing mobile or email"
	case 81013:
		return "user & party & tag all invalid"
	case 82001:
		return "All touser & toparty & totag invalid"
	case 301002:
		return "access_token and agentid mismatch"
	case 301036:
		return "userid can not be modified"
	}
	return "simulated error"
}

// getToken implements gettoken (doc 91039): the same token is returned while it is valid.
func (s *Server) getToken(q url.Values, _ []byte, _ *http.Request) reply {
	corpID, secret := q.Get("corpid"), q.Get("corpsecret")
	switch {
	case corpID == "":
		return reply{code: 41002}
	case secret == "":
		return reply{code: 41004}
	case corpID != s.corpID:
		return reply{code: 40013}
	}
	var kind string
	switch secret {
	case s.appSecret:
		kind = SecretApp
	case s.contactsSecret:
		kind = SecretContacts
	default:
		return reply{code: 40001}
	}
	now := s.now()
	tok := s.current[kind]
	t, ok := s.tokens[tok]
	if !ok || !now.Before(t.expires) {
		tok = randHex(32)
		t = &token{kind: kind, expires: now.Add(s.tokenTTL)}
		s.tokens[tok] = t
		s.current[kind] = tok
	}
	expiresIn := int64(math.Ceil(t.expires.Sub(now).Seconds()))
	return reply{secret: kind, fields: map[string]any{"access_token": tok, "expires_in": expiresIn}}
}

const qrSVG = `<svg xmlns="http://www.w3.org/2000/svg" width="171" height="171" viewBox="0 0 171 171">` +
	`<rect width="171" height="171" fill="#fff" stroke="#000"/>` +
	`<text x="85" y="90" font-size="14" text-anchor="middle">加入企业(模拟)</text></svg>`
