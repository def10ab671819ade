package contracttest

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/callback"
)

// CONTRACT §5: the callback endpoints (/wecom/callback, /wecom/contacts) and their side effects.

var ctNonceSeq atomic.Int64

// callback encrypts in with codec and POSTs it to path at timestamp ts; it returns the status and
// the reply's plaintext Content ("" for an empty body).
func (w *ctWorld) callback(t *testing.T, codec *callback.Codec, path string, in *app.Inbound, ts int64) (int, string) {
	t.Helper()
	nonce := fmt.Sprintf("n%d", ctNonceSeq.Add(1))
	timestamp := strconv.FormatInt(ts, 10)
	body, sig, err := codec.EncryptEvent(callback.EventXML(in), timestamp, nonce)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"msg_signature": {sig}, "timestamp": {timestamp}, "nonce": {nonce}}
	status, reply := w.rawPost(t, path+"?"+q.Encode(), body)
	if status != http.StatusOK || len(reply) == 0 {
		return status, ""
	}
	plain, err := codec.OpenReply(reply)
	if err != nil {
		t.Fatalf("reply to %s is not an encrypted passive reply: %v\n%s", in.Kind(), err, reply)
	}
	var x struct {
		ToUserName, FromUserName, MsgType, Content string
	}
	if err := xml.Unmarshal(plain, &x); err != nil {
		t.Fatalf("reply plaintext: %v\n%s", err, plain)
	}
	if x.ToUserName != in.FromUser || x.FromUserName != ctCorpID || x.MsgType != "text" {
		t.Errorf("reply header To=%q From=%q MsgType=%q", x.ToUserName, x.FromUserName, x.MsgType)
	}
	return status, x.Content
}

func (w *ctWorld) rawPost(t *testing.T, pathAndQuery string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(w.base+pathAndQuery, "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 {
		t.Errorf("POST %s: %d", pathAndQuery, resp.StatusCode)
	}
	return resp.StatusCode, b
}

func ctEvent(from, event, key string) *app.Inbound {
	return &app.Inbound{ToUser: ctCorpID, FromUser: from, CreateTime: time.Now().Unix(), MsgType: "event",
		AgentID: strconv.FormatInt(ctAgentID, 10), Event: event, EventKey: key}
}

var ctMsgSeq atomic.Int64

func ctText(from, content string) *app.Inbound {
	id := 7300000000000000000 + ctMsgSeq.Add(1)
	return &app.Inbound{ToUser: ctCorpID, FromUser: from, CreateTime: time.Now().Unix(), MsgType: "text",
		AgentID: strconv.FormatInt(ctAgentID, 10), Content: content, MsgID: strconv.FormatInt(id, 10)}
}

func ctChange(changeType, userID string, mod func(*app.Inbound)) *app.Inbound {
	in := &app.Inbound{ToUser: ctCorpID, FromUser: "sys", CreateTime: time.Now().Unix(), MsgType: "event",
		Event: "change_contact", ChangeType: changeType, UserID: userID}
	if mod != nil {
		mod(in)
	}
	return in
}

func TestContractCallbackVerifyURL(t *testing.T) {
	w := ctWorldShared(t)
	for _, tc := range []struct {
		path  string
		codec *callback.Codec
	}{{"/wecom/callback", w.app}, {"/wecom/contacts", w.contacts}} {
		plain := "echo-" + ctRandKey(16)
		ts := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10) // GET is exempt from max_age
		echostr, sig, err := tc.codec.EncryptEcho(plain, ts, "nonce1")
		if err != nil {
			t.Fatal(err)
		}
		q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {"nonce1"}, "echostr": {echostr}}
		st, body, _ := ctGET(t, w.base+tc.path+"?"+q.Encode())
		if st != http.StatusOK || body != plain {
			t.Errorf("GET %s verification: %d %q, want 200 %q", tc.path, st, body, plain)
		}
		bad := url.Values{"msg_signature": {strings.Repeat("0", 40)}, "timestamp": {ts}, "nonce": {"nonce1"}, "echostr": {echostr}}
		if st, _, _ := ctGET(t, w.base+tc.path+"?"+bad.Encode()); st != http.StatusForbidden {
			t.Errorf("GET %s bad signature: %d, want 403", tc.path, st)
		}
		if st, _, _ := ctGET(t, w.base+tc.path+"?timestamp=1&nonce=2"); st != http.StatusBadRequest {
			t.Errorf("GET %s without echostr: %d, want 400", tc.path, st)
		}
		// A valid signature over an echostr that is not valid ciphertext.
		junk := "not*base64"
		q = url.Values{"msg_signature": {ctSign(w, tc.codec, ts, "n", junk)}, "timestamp": {ts}, "nonce": {"n"}, "echostr": {junk}}
		if st, _, _ := ctGET(t, w.base+tc.path+"?"+q.Encode()); st != http.StatusBadRequest && st != http.StatusForbidden {
			t.Errorf("GET %s with a junk echostr: %d, want 400", tc.path, st)
		}
	}
	// A raw '+' in the query is a space: the echostr no longer matches its signature.
	for range 50 {
		plain := "raw-plus-" + ctRandKey(12)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		echostr, sig, err := w.app.EncryptEcho(plain, ts, "n2")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(echostr, "+") {
			continue
		}
		raw := "msg_signature=" + sig + "&timestamp=" + ts + "&nonce=n2&echostr=" + echostr
		if st, _, _ := ctGET(t, w.base+"/wecom/callback?"+raw); st != http.StatusForbidden {
			t.Errorf("echostr with an unescaped '+': %d, want 403", st)
		}
		break
	}
	// The app's token on the contacts server.
	plain := "cross"
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	echostr, sig, _ := w.app.EncryptEcho(plain, ts, "n")
	q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {"n"}, "echostr": {echostr}}
	if st, _, _ := ctGET(t, w.base+"/wecom/contacts?"+q.Encode()); st != http.StatusForbidden {
		t.Errorf("GET /wecom/contacts signed with the app token: %d, want 403", st)
	}
}

// ctSign computes a msg_signature with the world's tokens: sha1 over the sorted token,
// timestamp, nonce and data (加解密方案说明).
func ctSign(w *ctWorld, codec *callback.Codec, ts, nonce, data string) string {
	token := w.secrets[2]
	if codec == w.contacts {
		token = w.secrets[4]
	}
	parts := []string{token, ts, nonce, data}
	slices.Sort(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	return hex.EncodeToString(sum[:])
}

func TestContractCallbackPost(t *testing.T) {
	w := ctWorldShared(t)
	now := time.Now().Unix()

	t.Run("help and keywords", func(t *testing.T) {
		st, content := w.callback(t, w.app, "/wecom/callback", ctEvent("kw-user", "click", "HELP"), now)
		if st != http.StatusOK {
			t.Fatalf("HELP click: %d", st)
		}
		for _, p := range []string{"/bind", "/unbind", "/verify"} {
			if !strings.Contains(content, w.base+p) {
				t.Errorf("HELP reply lacks %s%s: %q", w.base, p, content)
			}
		}
		for kw, want := range map[string][]string{
			"我想绑定账号": {"/bind"}, "怎么解绑": {"/unbind"}, "身份验证": {"/verify"}, "帮助": {"/bind", "/unbind", "/verify"},
		} {
			st, content := w.callback(t, w.app, "/wecom/callback", ctText("kw-user", kw), now)
			if st != http.StatusOK || content == "" {
				t.Errorf("text %q: %d %q", kw, st, content)
				continue
			}
			for _, p := range want {
				if !ctHasLink(content, w.base+p) {
					t.Errorf("reply to %q lacks %s%s: %q", kw, w.base, p, content)
				}
			}
			if len(want) == 1 {
				for _, other := range []string{"/bind", "/unbind", "/verify"} {
					if other != want[0] && ctHasLink(content, w.base+other) {
						t.Errorf("reply to %q links %s too: %q", kw, other, content)
					}
				}
			}
		}
		// §7: 换绑 is answered with /bind; any other text gets the help text, which links
		// /bind, /verify, /unbind and /me.
		st, content = w.callback(t, w.app, "/wecom/callback", ctText("kw-user", "换绑"), now)
		if st != http.StatusOK || !ctHasLink(content, w.base+"/bind") || ctHasLink(content, w.base+"/unbind") {
			t.Errorf("text 换绑: %d %q, want a reply linking /bind", st, content)
		}
		st, content = w.callback(t, w.app, "/wecom/callback", ctText("kw-user", "你好"), now)
		for _, p := range []string{"/bind", "/verify", "/unbind", "/me"} {
			if st != http.StatusOK || !ctHasLink(content, w.base+p) {
				t.Errorf("other text: %d %q, want the help text linking %s", st, content, p)
			}
		}
		st, content = w.callback(t, w.app, "/wecom/callback", ctEvent("kw-user", "click", "OTHER"), now)
		if st != http.StatusOK || content != "" {
			t.Errorf("other click: %d %q, want 200 with an empty body", st, content)
		}
		st, content = w.callback(t, w.app, "/wecom/callback", ctEvent("kw-user", "enter_agent", ""), now)
		if st != http.StatusOK || content != "" {
			t.Errorf("enter_agent: %d %q, want 200 with an empty body", st, content)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		in := ctEvent("kw-user", "click", "HELP")
		for _, d := range []time.Duration{-10 * time.Minute, 10 * time.Minute} {
			if st, _ := w.callback(t, w.app, "/wecom/callback", in, time.Now().Add(d).Unix()); st != http.StatusForbidden {
				t.Errorf("timestamp %v away: %d, want 403", d, st)
			}
		}
		if st, _ := w.callback(t, w.app, "/wecom/contacts", ctChange("update_user", "x", nil), now); st != http.StatusForbidden {
			t.Errorf("app-signed POST to /wecom/contacts: %d, want 403", st)
		}
		if st, _ := w.callback(t, w.contacts, "/wecom/callback", in, now); st != http.StatusForbidden {
			t.Errorf("contacts-signed POST to /wecom/callback: %d, want 403", st)
		}
		ts := strconv.FormatInt(now, 10)
		body, sig, _ := w.app.EncryptEvent(callback.EventXML(in), ts, "nn")
		q := url.Values{"msg_signature": {strings.Repeat("a", 40)}, "timestamp": {ts}, "nonce": {"nn"}}
		if st, _ := w.rawPost(t, "/wecom/callback?"+q.Encode(), body); st != http.StatusForbidden {
			t.Errorf("bad signature: %d, want 403", st)
		}
		q.Set("msg_signature", sig)
		if st, _ := w.rawPost(t, "/wecom/callback?"+q.Encode(), []byte("<xml><ToUserName>")); st != http.StatusBadRequest {
			t.Errorf("malformed body: %d, want 400", st)
		}
		if st, _ := w.rawPost(t, "/wecom/callback?"+q.Encode(), []byte("not xml at all")); st != http.StatusBadRequest {
			t.Errorf("non-XML body: %d, want 400", st)
		}
		if st, _ := w.rawPost(t, "/wecom/callback", body); st != http.StatusBadRequest && st != http.StatusForbidden {
			t.Errorf("no query: %d, want 400", st)
		}
		q.Set("timestamp", "yesterday")
		if st, _ := w.rawPost(t, "/wecom/callback?"+q.Encode(), body); st != http.StatusBadRequest && st != http.StatusForbidden {
			t.Errorf("non-numeric timestamp: %d, want 400 or 403", st)
		}
		// A valid signature over a valid envelope whose ciphertext is garbage.
		junk := "QUJDREVGR0hJSktMTU5PUA=="
		env := []byte("<xml><ToUserName><![CDATA[" + ctCorpID + "]]></ToUserName><Encrypt><![CDATA[" + junk + "]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>")
		q = url.Values{"msg_signature": {ctSign(w, w.app, ts, "nn", junk)}, "timestamp": {ts}, "nonce": {"nn"}}
		if st, _ := w.rawPost(t, "/wecom/callback?"+q.Encode(), env); st != http.StatusBadRequest {
			t.Errorf("undecryptable Encrypt: %d, want 400", st)
		}
		// Another corp's message with our token and key.
		other, err := callback.New("wwotherotherother1", w.secrets[2], w.secrets[3])
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := w.callback(t, other, "/wecom/callback", in, now); st != http.StatusBadRequest {
			t.Errorf("wrong corp: %d, want 400", st)
		}
	})
}

var ctURLRe = regexp.MustCompile(`https?://[^\s"'<>)）,，。]+`)

// ctHasLink reports whether text holds exactly the link u (not merely a longer URL starting
// with it).
func ctHasLink(text, u string) bool {
	for _, m := range ctURLRe.FindAllString(text, -1) {
		if m == u {
			return true
		}
		if p, err := url.Parse(m); err == nil && p.Scheme+"://"+p.Host+p.Path == u {
			return true
		}
	}
	return false
}

// TestContractConcurrentCallbacks delivers the subscribe and update_user of several activations
// at once, each twice: every delivery 200, one activation and one welcome each.
func TestContractConcurrentCallbacks(t *testing.T) {
	w := ctWorldShared(t)
	var ps []ctPerson
	for range 3 {
		p := w.newPerson("并发", "student")
		w.client(t).bind(p)
		ps = append(ps, p)
	}
	now := time.Now().Unix()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for _, p := range ps {
		sub := ctEvent(p.number, "subscribe", "")
		up := ctChange("update_user", p.number, func(in *app.Inbound) { in.Status = 1 })
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var st int
				if i%2 == 0 {
					st, _ = w.callback(t, w.app, "/wecom/callback", sub, now)
				} else {
					st, _ = w.callback(t, w.contacts, "/wecom/contacts", up, now)
				}
				mu.Lock()
				statuses[st]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if statuses[http.StatusOK] != len(ps)*4 {
		t.Errorf("statuses of concurrent deliveries: %v", statuses)
	}
	for _, p := range ps {
		w.waitStatus(t, p.number, "active")
		w.waitWelcomes(t, p.number, 1)
	}
}
