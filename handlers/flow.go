package handlers

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/securecookie"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/internal/keys"
)

// flowCookieName is the cookie holding the state of a member flow between its steps; with an
// https base_url its wire name has the __Host- prefix (browserGuard.cookieName). The sealed value
// is bound to this name whatever the wire name.
const flowCookieName = "wecampus_flow"

// flowTTL bounds every flow: after it the member starts again (CONTRACT §3: ≤ 15 minutes).
const flowTTL = 15 * time.Minute

// loginTTL bounds the pre-login flow: the CAS login must come back within it.
const loginTTL = 10 * time.Minute

// flowKind names a member flow; each step accepts only the flow of its own kind. The values are
// stored in the flow cookie.
type flowKind string

// Member flows.
const (
	// flowLogin is the pre-login flow /bind/login starts: /bind/cas sends a ticket to CAS only
	// in the browser that holds it (login CSRF, CONTRACT §6). /bind/cas replaces it with the
	// bind flow, so it is single use.
	flowLogin  flowKind = "login"
	flowBind   flowKind = "bind"   // /bind…, including 换绑
	flowVerify flowKind = "verify" // /verify…
	flowUnbind flowKind = "unbind" // /unbind…
	flowMe     flowKind = "me"     // /me
)

// flowStep is where a flow stands: what its GET pages show (post/redirect/get, CONTRACT §7).
type flowStep string

// Flow steps; the zero step is the flow's first page (the mobile form, the verify or unbind page).
const (
	stepCode    flowStep = "code"    // an SMS code was asked for: the code page
	stepPending flowStep = "pending" // 换绑 recorded with a valid code, WeCom to finish: the retry page
	stepDone    flowStep = "done"    // bound, migrated, verified or unbound: the finished state
)

// flow is the state of one member flow, kept client-side in a signed and encrypted cookie. Only
// one flow is in progress per browser; starting one resets it. It holds what the GET pages need
// besides what is stored: the step, how many codes this flow sent, and which single-use link
// opened it.
type flow struct {
	Kind    flowKind `json:"k"`
	ID      string   `json:"i"` // random; a finished flow's id is recorded server-side (app.Flow)
	Expires int64    `json:"e"` // unix seconds
	Step    flowStep `json:"st,omitempty"`
	Sent    int      `json:"n,omitempty"` // SMS codes sent in this flow: a second one is "新的验证码"
	// Link is the digest of the single-use code (tfa or OAuth) this flow redeemed: opening the
	// same link again shows the flow's current step and redeems nothing.
	Link string `json:"l,omitempty"`

	// bind
	Person     *app.Person `json:"p,omitempty"`
	Mobile     string      `json:"mo,omitempty"` // normalised mobile of a 换绑 offer
	RebindFrom int64       `json:"mf,omitempty"` // the earlier binding a 换绑 releases

	// verify
	Verify *app.VerifyState `json:"v,omitempty"`

	// unbind, me, the verify menu entry (after OAuth)
	State     string `json:"s,omitempty"` // OAuth state
	UserID    string `json:"u,omitempty"`
	BindingID int64  `json:"b,omitempty"` // unbind: the binding released
}

// flowCodec seals flows with gorilla/securecookie (AES-256 + HMAC-SHA256), keys derived from
// server.session_secret.
type flowCodec struct {
	sc     *securecookie.SecureCookie
	name   string // the cookie's wire name
	secure bool
}

func newFlowCodec(secret, name string, secure bool) *flowCodec {
	sc := securecookie.New(keys.Derive(secret, keys.FlowHash), keys.Derive(secret, keys.FlowBlock))
	sc.MaxAge(int(flowTTL / time.Second))
	sc.SetSerializer(securecookie.JSONEncoder{})
	return &flowCodec{sc: sc, name: name, secure: secure}
}

var errNoFlow = errors.New("no flow")

// load returns the flow of kind in the request, or errNoFlow when it is missing, forged,
// expired, of another kind or without an id.
func (fc *flowCodec) load(c *gin.Context, kind flowKind) (*flow, error) {
	ck, err := c.Request.Cookie(fc.name)
	if err != nil {
		return nil, errNoFlow
	}
	var f flow
	if err := fc.sc.Decode(flowCookieName, ck.Value, &f); err != nil {
		return nil, errNoFlow
	}
	if f.Kind != kind || time.Now().Unix() > f.Expires || f.ID == "" {
		return nil, errNoFlow
	}
	return &f, nil
}

// save writes f; a new flow gets an id and a fresh expiry, a continued one keeps both.
func (fc *flowCodec) save(c *gin.Context, f *flow) error {
	if f.ID == "" {
		f.ID = newState()
	}
	if f.Expires == 0 {
		f.Expires = time.Now().Add(flowTTL).Unix()
	}
	v, err := fc.sc.Encode(flowCookieName, f)
	if err != nil {
		return err
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: fc.name, Value: v, Path: "/", MaxAge: int(time.Until(time.Unix(f.Expires, 0)).Seconds()) + 1,
		HttpOnly: true, Secure: fc.secure, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// clear removes the flow cookie.
func (fc *flowCodec) clear(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: fc.name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: fc.secure, SameSite: http.SameSiteLaxMode})
}

// ref is the flow as the app's use cases know it.
func (f *flow) ref() app.Flow { return app.Flow{ID: f.ID, Expires: time.Unix(f.Expires, 0)} }

// newState returns a random OAuth state (WeCom allows a-zA-Z0-9, ≤ 128 bytes).
func newState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// linkDigest is what a flow keeps of the single-use code in the link that opened it: enough to
// recognise the link, nothing to replay it with.
func linkDigest(code string) string {
	sum := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// seeOther answers a step that succeeded: 303 to the GET page that shows its outcome.
func seeOther(c *gin.Context, path string) {
	c.Redirect(http.StatusSeeOther, path)
}

// stateMatches compares OAuth states in constant time.
func stateMatches(want, got string) bool {
	return want != "" && len(got) == len(want) && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
