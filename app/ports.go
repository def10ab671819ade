package app

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Store is the persistence the use cases need. Implementations translate "not found" into
// ENOTFOUND and unique-key violations into ECONFLICT; every method is one transaction unless it
// runs inside Tx.
type Store interface {
	// Tx runs fn in one database transaction; fn must use only the Store it is given. If fn
	// returns an error, everything it wrote is rolled back. fn may run more than once (a
	// transaction the database aborted to break a deadlock is run again), so it must have no
	// effect outside the Store.
	Tx(ctx context.Context, fn func(tx Store) error) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error

	// CreateBinding inserts b (ID, CreatedAt and UpdatedAt are filled in) and appends ev, linked
	// to it. A live binding of the same number, userid or mobile gives ECONFLICT.
	CreateBinding(ctx context.Context, b *Binding, ev Event) error
	// UpdateBinding applies upd to binding id and appends ev; it returns the updated binding.
	// ENOTFOUND if no such id; ECONFLICT if IfStatus does not hold or a live key would collide.
	UpdateBinding(ctx context.Context, id int64, upd BindingUpdate, ev Event) (*Binding, error)
	// FindBindingByID returns one binding or ENOTFOUND.
	FindBindingByID(ctx context.Context, id int64) (*Binding, error)
	// FindLiveBinding returns the live (pending/active) binding whose number, userid or mobile
	// (field is "number", "userid" or "mobile") equals value, or ENOTFOUND.
	FindLiveBinding(ctx context.Context, field, value string) (*Binding, error)
	// FindLatestBinding returns the live binding for key (a number, userid or mobile, tried in that
	// order) or else the most recently updated historical one; ENOTFOUND if none.
	FindLatestBinding(ctx context.Context, key string) (*Binding, error)
	// FindBindings lists bindings, oldest first.
	FindBindings(ctx context.Context, f BindingFilter) ([]*Binding, error)
	// FindEvents returns the audit trail of a binding, oldest first.
	FindEvents(ctx context.Context, bindingID int64) ([]*Event, error)
	// AppendEvent adds an audit event not tied to a binding change.
	AppendEvent(ctx context.Context, ev Event) error

	// MarkInboundSeen records a callback delivery key; it reports false when the key was already
	// recorded (a retried delivery). Call it inside Tx with the effects it guards.
	MarkInboundSeen(ctx context.Context, key string, at time.Time) (bool, error)
	// PurgeInbound deletes de-duplication records older than before.
	PurgeInbound(ctx context.Context, before time.Time) (int64, error)

	// EnqueueMessage adds an outgoing app message to the durable outbox. A message whose DedupKey
	// is already queued is not added again (no error).
	EnqueueMessage(ctx context.Context, m OutboxMessage) error
	// ClaimMessages returns up to limit unsent messages due at now and leases them to owner
	// until leaseUntil so that concurrent workers do not send them twice.
	ClaimMessages(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]*OutboxMessage, error)
	// RenewMessageLease extends owner's lease on an unsent message until the given time;
	// ECONFLICT when owner no longer holds it.
	RenewMessageLease(ctx context.Context, id int64, owner string, until time.Time) error
	// MarkMessageSent records a delivery (the first one's time is kept) and ends the lease.
	MarkMessageSent(ctx context.Context, id int64, at time.Time) error
	// MarkMessageFailed records owner's failed attempt; the message is retried at next (or given
	// up on when next is zero). A non-zero unsureAt marks an attempt whose outcome is unknown.
	// ECONFLICT when owner no longer holds the lease.
	MarkMessageFailed(ctx context.Context, id int64, owner, errText string, next, unsureAt time.Time) error

	// CreateSMSCode stores a newly sent code (hash only).
	CreateSMSCode(ctx context.Context, c *SMSCode) error
	// LatestSMSCode returns the newest code for mobile and purpose (any purpose when purpose is
	// ""), or ENOTFOUND.
	LatestSMSCode(ctx context.Context, mobile string, purpose Purpose) (*SMSCode, error)
	// CountSMSCodes counts the codes sent to mobile for its holder's own use (any purpose, no
	// Requester) since the given time.
	CountSMSCodes(ctx context.Context, mobile string, since time.Time) (int, error)
	// CountSMSCodesByRequester counts the 换绑 codes requested by a number since the given time.
	CountSMSCodesByRequester(ctx context.Context, requester string, since time.Time) (int, error)
	// CountSMSCodesByIP counts codes requested from ip since the given time.
	CountSMSCodesByIP(ctx context.Context, ip string, since time.Time) (int, error)
	// ClaimSMSAttempt counts one guess before it is compared and returns its number, in one
	// atomic step conditional on the code being unused, unexpired at now and below maxAttempts
	// guesses; ECONFLICT when that condition fails, so no more than maxAttempts guesses are ever
	// evaluated, even when they arrive at the same instant.
	ClaimSMSAttempt(ctx context.Context, id int64, maxAttempts int, now time.Time) (int, error)
	// UseSMSCode marks a code used; ECONFLICT if it already was (single use under races).
	UseSMSCode(ctx context.Context, id int64, at time.Time) error

	// PurgeBindings blanks mobile and name of bindings unbound or migrated before the given
	// time (one audit event each) and returns how many; dryRun only counts.
	PurgeBindings(ctx context.Context, before time.Time, dryRun bool) (int, error)
	// PurgeSMSCodes deletes SMS code rows created before the given time; dryRun only counts.
	PurgeSMSCodes(ctx context.Context, before time.Time, dryRun bool) (int, error)
	// ForgetSMSIPs blanks the IP of SMS code rows created before the given time; dryRun only
	// counts.
	ForgetSMSIPs(ctx context.Context, before time.Time, dryRun bool) (int, error)

	// FinishFlow records a member flow id as finished until expires; ECONFLICT when it already
	// was (a replayed or concurrent finish).
	FinishFlow(ctx context.Context, id string, expires time.Time) error
	// FlowFinished reports whether a flow id was recorded as finished.
	FlowFinished(ctx context.Context, id string) (bool, error)
	// PurgeFinishedFlows deletes finished-flow records that expired before the given time.
	PurgeFinishedFlows(ctx context.Context, before time.Time, dryRun bool) (int, error)

	// CreateIntent records that a WeCom write for a number is about to happen, claimed as in
	// says (ClaimOwner, ClaimUntil, Tries). At most one open intent exists per number: a second
	// one gives ECONFLICT.
	CreateIntent(ctx context.Context, in *Intent) error
	// ClaimIntent takes open intent id for owner until the given time, and counts one more try,
	// in one conditional write: only while its tries still number tries (nobody claimed it since
	// it was read) and no claim runs at now. ECONFLICT otherwise, so that of replicas racing for
	// one intent exactly one works on it.
	ClaimIntent(ctx context.Context, id int64, tries int, owner string, now, until time.Time) error
	// RenewIntentClaim extends owner's claim on open intent id until the given time; ECONFLICT
	// when owner no longer holds it (taken over, or closed).
	RenewIntentClaim(ctx context.Context, id int64, owner string, until time.Time) error
	// ReleaseIntent ends owner's claim on open intent id at the given time, leaving the intent
	// open, and records its SettleAt (none when zero); ECONFLICT when owner no longer holds it.
	ReleaseIntent(ctx context.Context, id int64, owner string, at, settleAt time.Time) error
	// CloseIntent marks an intent done with a short result ("bound", "failed", "repaired", ...).
	CloseIntent(ctx context.Context, id int64, result string, at time.Time) error
	// FindOpenIntents lists open intents created before the given time, oldest first.
	FindOpenIntents(ctx context.Context, before time.Time) ([]*Intent, error)
	// FindOpenIntent returns the open intent for a number, or ENOTFOUND.
	FindOpenIntent(ctx context.Context, number string) (*Intent, error)

	// Backlog counts the outbox messages not sent yet (given-up ones excluded) and the open
	// intents, each with the creation time of its oldest; At is left zero.
	Backlog(ctx context.Context) (Backlog, error)

	// AdminStore: sessions and queries of the helpdesk console (admin.go).
	AdminStore
}

// SMSCode is a verification code sent by SMS; only a hash of the code is stored.
type SMSCode struct {
	ID      int64
	Mobile  string
	Purpose Purpose
	Hash    string // keyed hash of the code, never the code itself
	IP      string // requester, for the per-IP limit
	// Requester is the number that asked for a 换绑 code sent to another binding's mobile; ""
	// for the holder's own codes.
	Requester string
	Attempts  int // guesses evaluated so far (right or wrong)
	ExpiresAt time.Time
	UsedAt    *time.Time
	CreatedAt time.Time
}

// OutboxMessage is an app message (message/send) waiting in the durable outbox.
type OutboxMessage struct {
	ID       int64
	DedupKey string // unique: e.g. "welcome:<binding id>"
	ToUser   string
	Content  string
	Attempts int
	NextAt   time.Time
	SentAt   *time.Time
	// UnsureAt is the first attempt whose outcome was unknown: the message may have been
	// delivered then.
	UnsureAt  *time.Time
	LastError string
	CreatedAt time.Time
}

// Member is a WeCom member as our use cases see it.
type Member struct {
	UserID     string
	Name       string
	Mobile     string
	Department []int64
	Status     int // 1 active, 2 disabled, 4 not yet joined, 5 quit (user/get)
}

// MemberUpdate is a partial user/update; nil/empty fields are not sent.
type MemberUpdate struct {
	UserID     string
	Name       string
	Mobile     string
	Department []int64
	NewUserID  string
}

// MenuButton is one button of the app menu (menu/create).
type MenuButton struct {
	Type      string       `json:"type,omitempty" yaml:"type"`
	Name      string       `json:"name" yaml:"name"`
	Key       string       `json:"key,omitempty" yaml:"key"`
	URL       string       `json:"url,omitempty" yaml:"url"`
	SubButton []MenuButton `json:"sub_button,omitempty" yaml:"sub_button"`
}

// WeCom is the part of the WeCom API the use cases call. Errors answered by WeCom are
// *WeComError with the errcode; a call whose outcome is unknown (timeout, connection reset) is a
// *WeComError with Unknown set.
type WeCom interface {
	// CreateUser creates a member with to_invite true (user/create, contacts secret).
	CreateUser(ctx context.Context, m Member) error
	// UpdateUser updates a member (user/update, contacts secret).
	UpdateUser(ctx context.Context, u MemberUpdate) error
	// GetUser reads a member (user/get); 60111 when it does not exist.
	GetUser(ctx context.Context, userID string) (*Member, error)
	// DeleteUser deletes a member (user/delete); 60111 when it does not exist.
	DeleteUser(ctx context.Context, userID string) error
	// DeleteUsers deletes up to 200 members in one call (user/batchdelete), all or nothing: one
	// userid that does not exist fails the whole call with 60111 and deletes nobody.
	DeleteUsers(ctx context.Context, userIDs ...string) error
	// UserIDByMobile looks a mobile up (user/getuserid); 46004 when nobody has it. Call it only
	// after a 60104, never speculatively.
	UserIDByMobile(ctx context.Context, mobile string) (string, error)
	// Invite (re)sends the invitation (batch/invite).
	Invite(ctx context.Context, userIDs ...string) error
	// JoinQRCode returns the URL of the corp's join QR code (corp/get_join_qrcode).
	JoinQRCode(ctx context.Context) (string, error)
	// ListUserIDs lists every member's userid (user/list_id), for reconcile.
	ListUserIDs(ctx context.Context) ([]string, error)

	// SendText sends an app text message (message/send, app secret). With dedup > 0 WeCom drops
	// a message identical to one it accepted in the last dedup (enable_duplicate_check,
	// duplicate_check_interval: at most 4 h), so a resend after an unknown outcome is not
	// delivered twice.
	SendText(ctx context.Context, toUser, content string, dedup time.Duration) error
	// UserFromCode redeems an OAuth code (auth/getuserinfo, app secret): a member gives userID, a
	// non-member gives openID.
	UserFromCode(ctx context.Context, code string) (userID, openID string, err error)
	// TfaInfo redeems a join-verification code (auth/get_tfa_info).
	TfaInfo(ctx context.Context, code string) (userID, tfaCode string, err error)
	// TfaSucc passes a member's join verification (user/tfa_succ).
	TfaSucc(ctx context.Context, userID, tfaCode string) error
	// AuthSucc passes a member's legacy join verification (user/authsucc).
	AuthSucc(ctx context.Context, userID string) error

	// CreateMenu writes the app menu (menu/create, app secret, agentid).
	CreateMenu(ctx context.Context, buttons []MenuButton) error
	// GetMenu reads the app menu (menu/get); no menu is an empty menu, not an error.
	GetMenu(ctx context.Context) ([]MenuButton, error)
}

// WeComError is a failed WeCom call. Code is WeCom's errcode; Unknown marks a call whose outcome
// is not known (timeout or transport failure after the request may have been sent).
type WeComError struct {
	Op      string // API path, e.g. "user/create"
	Code    int
	Msg     string
	Unknown bool
}

// Error returns "wecom: <op>: errcode <code>: <msg>", or "outcome unknown" for an Unknown call.
func (e *WeComError) Error() string {
	if e.Unknown {
		return "wecom: " + e.Op + ": outcome unknown: " + e.Msg
	}
	return "wecom: " + e.Op + ": errcode " + strconv.Itoa(e.Code) + ": " + e.Msg
}

// WeCom errcodes the use cases branch on (WECOM.md).
const (
	WeComBusy             = -1
	WeComInvalidCode      = 40029
	WeComFreqLimit        = 45009
	WeComConcurrencyLimit = 45033
	WeComMobileNotFound   = 46004 // user/getuserid: no member has that mobile
	WeComUserIDExists     = 60102
	WeComMobileInvalid    = 60103
	WeComMobileExists     = 60104
	WeComUserNotFound     = 60111
)

// WeComCode returns the WeCom errcode in err's chain, or 0.
func WeComCode(err error) int {
	var we *WeComError
	if errors.As(err, &we) {
		return we.Code
	}
	return 0
}

// WeComTemporary reports whether err is a WeCom failure worth retrying later: busy (-1),
// frequency limit (45009), too many concurrent calls (45033), or an unknown outcome.
func WeComTemporary(err error) bool {
	var we *WeComError
	if !errors.As(err, &we) {
		return false
	}
	return we.Unknown || we.Code == WeComBusy || we.Code == WeComFreqLimit || we.Code == WeComConcurrencyLimit
}

// SMS sends verification codes.
type SMS interface {
	// Send delivers code to mobile; message is the full text for providers that send free text.
	Send(ctx context.Context, mobile, code string, purpose Purpose, message string) error
}

// CASIdentity is what the school's CAS server says about a person after a valid ticket.
type CASIdentity struct {
	Number string // the CAS user (学号/工号)
	Name   string
	Type   string // identity type attribute, e.g. student, staff
	// PersonID is the value of identity.person_attribute (a stable person id such as a hashed
	// ID-card number or 人员编号), "" when not configured or not released.
	PersonID string
}

// CAS validates service tickets against the school's CAS server.
type CAS interface {
	// LoginURL is the CAS login URL for service, with renew=true.
	LoginURL(service string) string
	// LogoutURL is the CAS logout URL that returns to service.
	LogoutURL(service string) string
	// Validate validates ticket for service. An invalid or replayed ticket is EUNAUTHORIZED; an
	// unreachable server is EUNAVAILABLE.
	Validate(ctx context.Context, ticket, service string) (*CASIdentity, error)
}
