// Package wecomtest is an in-process, stateful fake of the WeCom (企业微信) server API, used by the
// tests of every package and embedded in `wecampus demo`.
//
// It behaves like WeCom as described in WECOM.md: two secrets with their own expiring tokens
// (48002 when a token calls an API of the other secret), members with case-insensitive unique
// userids and unique mobiles, single-use OAuth and join-verification codes that expire after five
// minutes, the app menu, app messages, invitations, user/list_id paging, user/batchdelete (which
// one unknown userid fails as a whole) and the concurrency cap of the join-verification APIs
// (45033 beyond 20 calls at once). It records every call and the most calls of each endpoint in
// flight at once, and can inject faults (errcodes, latency, hanging or reset connections) into
// the next calls of an endpoint, including "apply the write, then never answer" so that tests
// can prove a create whose outcome is unknown is resolved by reading.
//
// Endpoints are named by their path after /cgi-bin/, e.g. "gettoken", "user/create",
// "message/send". A Server is safe for concurrent use.
package wecomtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wecampus/wecampus/app"
)

// Defaults used when no option overrides them.
const (
	DefaultAppSecret      = "wecomtest-app-secret"
	DefaultContactsSecret = "wecomtest-contacts-secret"
	DefaultAgentID        = int64(1000002)
	DefaultTokenTTL       = 7200 * time.Second
)

// Token kinds, as reported in Call.Secret.
const (
	SecretApp      = "app"
	SecretContacts = "contacts"
)

// codeTTL is how long OAuth codes, join-verification codes and tfa_codes stay valid (WECOM.md §3, §4).
const codeTTL = 5 * time.Minute

// maxHang bounds how long a dropped call hangs when the client never gives up.
const maxHang = 2 * time.Minute

// Member is a WeCom member as the simulator stores it.
type Member struct {
	UserID     string
	Name       string
	Mobile     string
	Department []int64
	Status     int  // 1 active, 2 disabled, 4 not yet joined, 5 quit
	ToInvite   bool // created through user/create with to_invite true (or absent)
	Renamable  bool // system-generated userid: user/update may set new_userid once
}

// App converts m to the domain type.
func (m Member) App() app.Member {
	return app.Member{UserID: m.UserID, Name: m.Name, Mobile: m.Mobile, Department: slices.Clone(m.Department), Status: m.Status}
}

// Call is one request the simulator received.
type Call struct {
	Endpoint string     // path after /cgi-bin/, e.g. "user/create"
	Query    url.Values // the query string, access_token included
	Body     []byte     // the raw request body (POST)
	Secret   string     // SecretApp or SecretContacts when the access_token was one we issued, else ""
	ErrCode  int        // the errcode answered (or injected); 0 also when no answer was written
	Faulted  bool       // an injected fault applied to this call
	At       time.Time  // simulated time of arrival
}

// Message is an app message accepted by message/send, one per recipient.
type Message struct {
	AgentID int64
	ToUser  string // one userid, or "@all"
	MsgType string
	Content string // text.content for text messages
	Body    []byte // the whole request body
	At      time.Time
}

// Invite records an invitation: through user/create (Source "create") or batch/invite ("batch").
type Invite struct {
	UserID string
	Source string
	At     time.Time
}

// ChangeEvent is reported to OnChange hooks when a member's status changes through a join action
// (Join, user/tfa_succ, user/authsucc). The demo turns it into an encrypted change_contact callback.
type ChangeEvent struct {
	ChangeType string // "update_user"
	UserID     string
	Status     int
}

// Fault is injected into the next calls of one endpoint (see Server.Inject).
type Fault struct {
	// ErrCode answers this errcode without applying the call (after Latency, if set).
	ErrCode int
	// Latency applies the call, then delays the answer; a client whose deadline is shorter gives
	// up although the write happened.
	Latency time.Duration
	// Drop applies the call, then never answers: the request hangs until the client gives up.
	Drop bool
	// Reset applies the call, then closes the connection without an answer.
	Reset bool
	// NotApplied makes Drop and Reset lose the request before it is applied.
	NotApplied bool
	// HTTPStatus answers with this HTTP status and a non-JSON body, without applying the call
	// (a proxy or gateway failure).
	HTTPStatus int
	// ApplyAfter holds the call this long before applying it, whether or not the client still
	// waits (WeCom landing a write late: a client that gave up earlier and reads at once finds
	// nothing yet).
	ApplyAfter time.Duration
}

type faultSlot struct {
	left  int
	fault Fault
}

type member struct {
	Member
	prevStatus int // status before a disable, restored by enable:1
}

type token struct {
	kind    string
	expires time.Time
}

type code struct {
	userID  string
	openID  string
	expires time.Time
}

// Server is the simulated WeCom API. Create it with New; it listens only once URL is called.
type Server struct {
	corpID         string
	appSecret      string
	contactsSecret string
	agentID        int64
	departments    map[int64]bool // nil: any positive id is valid
	joinQRURL      string

	mu         sync.Mutex
	offset     time.Duration // Advance
	tokenTTL   time.Duration
	latency    time.Duration
	tokens     map[string]*token
	current    map[string]string // kind -> newest token
	members    map[string]*member
	byMobile   map[string]string // mobile -> lower-case userid
	oauthCodes map[string]*code
	tfaCodes   map[string]*code // join-verification codes (IssueTfaCode)
	tfaTokens  map[string]*code // tfa_code values handed out by auth/get_tfa_info
	menus      map[int64][]app.MenuButton
	messages   []Message
	lastSent   map[string]time.Time // duplicate check: when each distinct message was last accepted
	duplicates int                  // messages dropped by the duplicate check
	invites    []Invite
	calls      []Call
	faults     map[string][]*faultSlot
	inFlight   map[string]int // endpoint -> calls being answered now
	maxFlight  map[string]int // endpoint -> most calls ever answered at once
	misses     int
	onChange   []func(ChangeEvent)

	startOnce sync.Once
	ts        *httptest.Server
	closeOnce sync.Once
	closed    chan struct{}
}

// Option configures a Server.
type Option func(*Server)

// WithAppSecret sets the app secret (default DefaultAppSecret).
func WithAppSecret(secret string) Option { return func(s *Server) { s.appSecret = secret } }

// WithContactsSecret sets the 通讯录同步 secret (default DefaultContactsSecret).
func WithContactsSecret(secret string) Option {
	return func(s *Server) { s.contactsSecret = secret }
}

// WithAgentID sets the app's agentid (default DefaultAgentID).
func WithAgentID(id int64) Option { return func(s *Server) { s.agentID = id } }

// WithDepartments restricts valid department ids to ids (default: any positive id is valid).
func WithDepartments(ids ...int64) Option {
	return func(s *Server) {
		s.departments = make(map[int64]bool, len(ids))
		for _, id := range ids {
			s.departments[id] = true
		}
	}
}

// WithTokenTTL sets the lifetime of issued access tokens (default DefaultTokenTTL).
func WithTokenTTL(d time.Duration) Option { return func(s *Server) { s.tokenTTL = d } }

// WithJoinQRCodeURL fixes the URL returned by corp/get_join_qrcode (size_type is appended). By
// default it points at a placeholder image served by Handler itself, on the host of the request.
func WithJoinQRCodeURL(u string) Option { return func(s *Server) { s.joinQRURL = u } }

// New returns a simulator for corpID. It does not listen until URL is called; Handler can be
// mounted elsewhere instead.
func New(corpID string, opts ...Option) *Server {
	s := &Server{
		corpID:         corpID,
		appSecret:      DefaultAppSecret,
		contactsSecret: DefaultContactsSecret,
		agentID:        DefaultAgentID,
		tokenTTL:       DefaultTokenTTL,
		tokens:         map[string]*token{},
		current:        map[string]string{},
		members:        map[string]*member{},
		byMobile:       map[string]string{},
		oauthCodes:     map[string]*code{},
		tfaCodes:       map[string]*code{},
		tfaTokens:      map[string]*code{},
		menus:          map[int64][]app.MenuButton{},
		faults:         map[string][]*faultSlot{},
		inFlight:       map[string]int{},
		maxFlight:      map[string]int{},
		closed:         make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// CorpID returns the simulated corp id.
func (s *Server) CorpID() string { return s.corpID }

// AppSecret returns the app secret gettoken accepts.
func (s *Server) AppSecret() string { return s.appSecret }

// ContactsSecret returns the 通讯录同步 secret gettoken accepts.
func (s *Server) ContactsSecret() string { return s.contactsSecret }

// AgentID returns the app's agentid.
func (s *Server) AgentID() int64 { return s.agentID }

// URL starts an HTTP listener on the loopback interface (once) and returns its base URL, to be
// used as the client's api_base.
func (s *Server) URL() string {
	s.startOnce.Do(func() { s.ts = httptest.NewServer(s.Handler()) })
	return s.ts.URL
}

// Close releases hanging calls and stops the listener, if any.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	s.startOnce.Do(func() {}) // no listener may start after Close
	if s.ts != nil {
		s.ts.Close()
	}
}

// now is the simulated clock: the wall clock moved by Advance. Callers hold s.mu.
func (s *Server) now() time.Time { return time.Now().Add(s.offset) }

// Advance moves the simulated clock forward by d (tokens and codes expire accordingly).
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// SetLatency delays the answer to every call by d (for load tests); 0 turns it off.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetTokenTTL changes the lifetime of tokens issued from now on.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTL = d
}

// ExpireTokens makes every issued token expire now: using one gives 42001, and gettoken issues a
// new one.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.now().Add(-time.Second)
	for _, t := range s.tokens {
		t.expires = past
	}
}

// InvalidateTokens forgets every issued token (as after a secret reset): using one gives 40014.
func (s *Server) InvalidateTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
	clear(s.current)
}

// Tokens returns every token issued so far that is still known (for redaction assertions).
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.tokens))
	for t := range s.tokens {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Inject makes the next n calls of endpoint (e.g. "user/create", "gettoken") suffer f. Injections
// for the same endpoint queue up in order.
func (s *Server) Inject(endpoint string, n int, f Fault) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[endpoint] = append(s.faults[endpoint], &faultSlot{left: n, fault: f})
}

// takeFault consumes one injected fault for endpoint. Callers hold s.mu.
func (s *Server) takeFault(endpoint string) (Fault, bool) {
	q := s.faults[endpoint]
	if len(q) == 0 {
		return Fault{}, false
	}
	f := q[0].fault
	q[0].left--
	if q[0].left == 0 {
		q = q[1:]
	}
	if len(q) == 0 {
		delete(s.faults, endpoint)
	} else {
		s.faults[endpoint] = q
	}
	return f, true
}

// Calls returns a copy of every call received, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		c.Query = cloneValues(c.Query)
		c.Body = slices.Clone(c.Body)
		out[i] = c
	}
	return out
}

// CallCount counts the calls received for endpoint.
func (s *Server) CallCount(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Endpoint == endpoint {
			n++
		}
	}
	return n
}

// MaxInFlight returns the most calls of endpoint the simulator was answering at the same time.
func (s *Server) MaxInFlight(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxFlight[endpoint]
}

// Messages returns the app messages accepted so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// Duplicates counts the message/send calls answered ok but dropped by the duplicate check
// (enable_duplicate_check): an identical message was accepted within duplicate_check_interval.
func (s *Server) Duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.duplicates
}

// Invites returns the invitations recorded so far, oldest first.
func (s *Server) Invites() []Invite {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.invites)
}

// GetUserIDMisses counts user/getuserid calls that found nobody (46004). WeCom blocks the API for
// a day when misses exceed 20 % of the corp's size (WECOM.md §1).
func (s *Server) GetUserIDMisses() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.misses
}

// Menu returns the menu set for agentID, or nil.
func (s *Server) Menu(agentID int64) []app.MenuButton {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.menus[agentID])
}

// AddMember adds a member directly (as if created in the admin console). Status 0 means 1
// (active). It fails on an invalid field or a userid/mobile that is already taken.
func (s *Server) AddMember(m Member) error {
	if m.Status == 0 {
		m.Status = 1
	}
	switch m.Status {
	case 1, 2, 4, 5:
	default:
		return fmt.Errorf("wecomtest: add member %q: invalid status %d", m.UserID, m.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if code := s.checkNewMember(m.UserID, m.Name, m.Mobile, m.Department); code != 0 {
		return fmt.Errorf("wecomtest: add member %q: errcode %d %s", m.UserID, code, errmsg(code))
	}
	m.Department = slices.Clone(m.Department)
	s.insert(&member{Member: m})
	return nil
}

// Member returns the member with userid (case-insensitive).
func (s *Server) Member(userID string) (Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.members[strings.ToLower(userID)]
	if !ok {
		return Member{}, false
	}
	out := m.Member
	out.Department = slices.Clone(out.Department)
	return out, true
}

// Members returns every member, ordered by userid.
func (s *Server) Members() []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Member, 0, len(s.members))
	for _, k := range s.sortedKeys() {
		m := s.members[k].Member
		m.Department = slices.Clone(m.Department)
		out = append(out, m)
	}
	return out
}

// SetStatus sets a member's status directly (no change event).
func (s *Server) SetStatus(userID string, status int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.members[strings.ToLower(userID)]
	if !ok {
		return fmt.Errorf("wecomtest: set status: no member %q", userID)
	}
	m.Status = status
	return nil
}

// OnChange registers a hook called after a member's status changed through a join action. Hooks
// run synchronously, outside the simulator's lock, before the triggering call is answered; start
// a goroutine in the hook to deliver asynchronously like WeCom does.
func (s *Server) OnChange(fn func(ChangeEvent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = append(s.onChange, fn)
}

// Join simulates the member accepting the invitation (status 4 -> 1) and fires OnChange.
func (s *Server) Join(userID string) error {
	s.mu.Lock()
	m, ok := s.members[strings.ToLower(userID)]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("wecomtest: join: no member %q", userID)
	}
	if m.Status != 4 {
		st := m.Status
		s.mu.Unlock()
		return fmt.Errorf("wecomtest: join: member %q has status %d, not 4", userID, st)
	}
	fire := s.activate(m)
	s.mu.Unlock()
	fire()
	return nil
}

// activate moves a not-yet-joined member to status 1 and returns the hook calls to run after the
// lock is released. Callers hold s.mu.
func (s *Server) activate(m *member) func() {
	if m.Status != 4 {
		return func() {}
	}
	m.Status = 1
	ev := ChangeEvent{ChangeType: "update_user", UserID: m.UserID, Status: 1}
	hooks := slices.Clone(s.onChange)
	return func() {
		for _, h := range hooks {
			h(ev)
		}
	}
}

// IssueOAuthCode returns a single-use OAuth code (valid 5 minutes) that auth/getuserinfo
// resolves to userID.
func (s *Server) IssueOAuthCode(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := randHex(16)
	s.oauthCodes[c] = &code{userID: userID, expires: s.now().Add(codeTTL)}
	return c
}

// IssueOAuthCodeForOpenID returns a single-use OAuth code of a visitor who is not a member:
// auth/getuserinfo answers with openid only.
func (s *Server) IssueOAuthCodeForOpenID(openID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := randHex(16)
	s.oauthCodes[c] = &code{openID: openID, expires: s.now().Add(codeTTL)}
	return c
}

// IssueTfaCode returns the single-use code (valid 5 minutes) WeCom appends to the verification
// page URL when userID joins; auth/get_tfa_info redeems it for the userid and a tfa_code.
func (s *Server) IssueTfaCode(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := randHex(16)
	s.tfaCodes[c] = &code{userID: userID, expires: s.now().Add(codeTTL)}
	return c
}

// insert stores m and indexes its mobile. Callers hold s.mu and have checked uniqueness.
func (s *Server) insert(m *member) {
	k := strings.ToLower(m.UserID)
	s.members[k] = m
	if m.Mobile != "" {
		s.byMobile[m.Mobile] = k
	}
}

// remove deletes m. Callers hold s.mu.
func (s *Server) remove(m *member) {
	k := strings.ToLower(m.UserID)
	delete(s.members, k)
	if m.Mobile != "" && s.byMobile[m.Mobile] == k {
		delete(s.byMobile, m.Mobile)
	}
}

// sortedKeys returns the member keys in order. Callers hold s.mu.
func (s *Server) sortedKeys() []string {
	keys := make([]string, 0, len(s.members))
	for k := range s.members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
