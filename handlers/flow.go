package handlers

import (
	"crypto/rand"
	"crypto/subtle"
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

// flowKind names a member flow; each step accepts only the flow of its own kind. The values are
// stored in the flow cookie.
type flowKind string

// Member flows.
const (
	flowBind   flowKind = "bind"   // /bind…, including 换绑
	flowVerify flowKind = "verify" // /verify…
	flowUnbind flowKind = "unbind" // /unbind…
	flowMe     flowKind = "me"     // /me
)

// flow is the state of one member flow, kept client-side in a signed and encrypted cookie. Only
// one flow is in progress per browser; starting one resets it.
type flow struct {
	Kind    flowKind `json:"k"`
	Expires int64    `json:"e"` // unix seconds

	// bind
	Person     *app.Person `json:"p,omitempty"`
	Mobile     string      `json:"mo,omitempty"` // normalised mobile of a pending 换绑 (verify: the bound mobile)
	RebindFrom int64       `json:"mf,omitempty"`
	CodeSent   bool        `json:"cs,omitempty"`

	// verify
	Verify *app.VerifyState `json:"v,omitempty"`

	// unbind, me (after OAuth)
	State  string `json:"s,omitempty"` // OAuth state, single use
	UserID string `json:"u,omitempty"`
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
// expired or of another kind.
func (fc *flowCodec) load(c *gin.Context, kind flowKind) (*flow, error) {
	ck, err := c.Request.Cookie(fc.name)
	if err != nil {
		return nil, errNoFlow
	}
	var f flow
	if err := fc.sc.Decode(flowCookieName, ck.Value, &f); err != nil {
		return nil, errNoFlow
	}
	if f.Kind != kind || time.Now().Unix() > f.Expires {
		return nil, errNoFlow
	}
	return &f, nil
}

// save writes f; a new flow gets a fresh expiry, a continued one keeps it.
func (fc *flowCodec) save(c *gin.Context, f *flow) error {
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

// newState returns a random OAuth state (WeCom allows a-zA-Z0-9, ≤ 128 bytes).
func newState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// stateMatches compares OAuth states in constant time.
func stateMatches(want, got string) bool {
	return want != "" && len(got) == len(want) && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
