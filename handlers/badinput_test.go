package handlers_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/callback"
)

// rawEncrypt encrypts like WeCom (doc 90968) but lets a test break every part: the plaintext is
// random(16) ‖ msgLen (big-endian) ‖ msg ‖ receiveID, padded by pad, AES-256-CBC with IV key[:16].
// It is written here, independently of the codec.
func rawEncrypt(t *testing.T, encodingAESKey string, msgLen uint32, msg, receiveID string, pad func([]byte) []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		t.Fatalf("key: %v", err)
	}
	p := []byte("0123456789abcdef")
	p = binary.BigEndian.AppendUint32(p, msgLen)
	p = append(p, msg...)
	p = append(p, receiveID...)
	p = pad(p)
	if len(p)%aes.BlockSize != 0 {
		t.Fatalf("test bug: %d bytes not block-aligned", len(p))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(p, p)
	return base64.StdEncoding.EncodeToString(p)
}

// pkcs7x32 pads to a multiple of 32 bytes, as WeCom does.
func pkcs7x32(p []byte) []byte {
	n := 32 - len(p)%32
	return append(p, bytes.Repeat([]byte{byte(n)}, n)...)
}

func envelope(encrypt string) []byte {
	return []byte("<xml><ToUserName><![CDATA[" + testCorpID + "]]></ToUserName><Encrypt><![CDATA[" + encrypt +
		"]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>")
}

// TestCallbackBadInput sends malformed, forged, replayed and oversize requests. Every one gets
// its 4xx (never a 5xx, never a panic), and none changes anything: afterwards the store is as it
// was, and the genuine delivery they were derived from still applies.
func TestCallbackBadInput(t *testing.T) {
	e := newEnv(t)
	b := e.createBinding("2021000001", "u1", "13800000001", app.StatusPending)

	now := time.Now().Unix()
	in := &app.Inbound{ToUser: testCorpID, FromUser: "u1", CreateTime: now, MsgType: "event", Event: "subscribe", AgentID: "1000002"}
	plain := callback.EventXML(in)
	good := e.encrypt("/wecom/callback", e.wecomApp, plain, now)
	gq, err := url.ParseQuery(good.query)
	if err != nil {
		t.Fatal(err)
	}
	ts, nonce, sig := gq.Get("timestamp"), gq.Get("nonce"), gq.Get("msg_signature")
	encGood := string(between(good.body, "<Encrypt><![CDATA[", "]]></Encrypt>"))

	// signed signs data with the app's token for the current ts/nonce.
	signed := func(data string) string {
		return url.Values{"msg_signature": {sign(testAppToken, ts, nonce, data)}, "timestamp": {ts}, "nonce": {nonce}}.Encode()
	}
	// signedEnc is a POST whose Encrypt is enc, correctly signed: only the inside is wrong.
	signedEnc := func(enc string) (string, []byte) { return signed(enc), envelope(enc) }

	// Deliveries that are correctly encrypted and signed, but wrong in another way.
	stale := e.encrypt("/wecom/callback", e.wecomApp, plain, now-600)
	future := e.encrypt("/wecom/callback", e.wecomApp, plain, now+600)
	otherCorp := e.encrypt("/wecom/callback", mustCodec(t, "wwOTHERCORP00001", testAppToken, testAppKey), plain, now)
	contactsSigned := e.encrypt("/wecom/callback", e.wecomContacts, plain, now)
	appOnContacts := e.encrypt("/wecom/contacts", e.wecomApp, callback.EventXML(&app.Inbound{
		ToUser: testCorpID, FromUser: "sys", CreateTime: now, MsgType: "event", Event: "change_contact",
		ChangeType: "update_user", UserID: "u1", Status: 1}), now)
	notXML := e.encrypt("/wecom/callback", e.wecomApp, []byte("subscribe u1 please"), now)
	nonNumericTS := func() (string, []byte) {
		body, s, err := e.wecomApp.EncryptEvent(plain, "17e8", nonce)
		if err != nil {
			t.Fatal(err)
		}
		return url.Values{"msg_signature": {s}, "timestamp": {"17e8"}, "nonce": {nonce}}.Encode(), body
	}
	echo, echoSig, err := e.wecomApp.EncryptEcho("1234567890", ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	echoOtherCorp, echoOtherSig, err := mustCodec(t, "wwOTHERCORP00001", testAppToken, testAppKey).EncryptEcho("1234567890", ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	getQ := func(sig, echostr string) string {
		return url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {echostr}}.Encode()
	}
	q := func(kv ...string) string { // raw query from pairs, in order, duplicates kept
		var parts []string
		for i := 0; i+1 < len(kv); i += 2 {
			parts = append(parts, kv[i]+"="+url.QueryEscape(kv[i+1]))
		}
		return strings.Join(parts, "&")
	}

	type req struct {
		method, path, query string
		body                []byte
		chunked             bool // send the body without Content-Length
	}
	post := func(query string, body []byte) req {
		return req{http.MethodPost, "/wecom/callback", query, body, false}
	}
	get := func(query string) req { return req{http.MethodGet, "/wecom/callback", query, nil, false} }

	tests := []struct {
		name string
		req  req
		want int
	}{
		{"PostNoSignature", post(q("timestamp", ts, "nonce", nonce), good.body), 400},
		{"PostNoTimestamp", post(q("msg_signature", sig, "nonce", nonce), good.body), 400},
		{"PostNoNonce", post(q("msg_signature", sig, "timestamp", ts), good.body), 400},
		{"PostEmptyNonce", post(q("msg_signature", sig, "timestamp", ts, "nonce", ""), good.body), 400},
		{"PostNoQuery", post("", good.body), 400},
		{"PostBadSignature", post(signed("something else"), good.body), 403},
		{"PostGarbageSignature", post(q("msg_signature", "not-a-signature", "timestamp", ts, "nonce", nonce), good.body), 403},
		{"PostSignatureOfOtherNonce", post(q("msg_signature", sig, "timestamp", ts, "nonce", nonce+"1"), good.body), 403},
		{"PostContactsTokenOnAppRoute", post(contactsSigned.query, contactsSigned.body), 403},
		{"PostAppTokenOnContactsRoute", req{http.MethodPost, "/wecom/contacts", appOnContacts.query, appOnContacts.body, false}, 403},
		{"PostStaleTimestamp", post(stale.query, stale.body), 403},
		{"PostFutureTimestamp", post(future.query, future.body), 403},
		{"PostNonNumericTimestamp", func() req { q, b := nonNumericTS(); return post(q, b) }(), 400},
		{"PostOverlongTimestamp", post(q("msg_signature", sig, "timestamp", strings.Repeat("1", 25), "nonce", nonce), good.body), 400},
		{"PostDuplicateSignature", post(q("msg_signature", sig, "msg_signature", sig, "timestamp", ts, "nonce", nonce), good.body), 400},
		{"PostDuplicateTimestamp", post(q("msg_signature", sig, "timestamp", ts, "timestamp", ts, "nonce", nonce), good.body), 400},
		{"PostBadPercentEncoding", post("msg_signature="+sig+"&timestamp="+ts+"&nonce=%zz", good.body), 400},
		{"PostEmptyBody", post(good.query, nil), 400},
		{"PostNotXML", post(good.query, []byte("hello, this is not xml")), 400},
		{"PostTruncatedXML", post(good.query, good.body[:len(good.body)/2]), 400},
		{"PostXMLWithoutEncrypt", post(good.query, []byte("<xml><ToUserName><![CDATA["+testCorpID+"]]></ToUserName></xml>")), 400},
		{"PostEmptyEncrypt", func() req { q, b := signedEnc(""); return post(q, b) }(), 400},
		{"PostEncryptNotBase64", func() req { q, b := signedEnc("@@@ not base64 ###"); return post(q, b) }(), 400},
		{"PostCiphertextNotBlockAligned", func() req {
			q, b := signedEnc(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 40)))
			return post(q, b)
		}(), 400},
		{"PostCiphertextTooShort", func() req {
			q, b := signedEnc(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16)))
			return post(q, b)
		}(), 400},
		{"PostBadPaddingZero", func() req {
			q, b := signedEnc(rawEncrypt(t, testAppKey, uint32(len(plain)), string(plain), testCorpID, func(p []byte) []byte {
				p = pkcs7x32(p)
				p[len(p)-1] = 0
				return p
			}))
			return post(q, b)
		}(), 400},
		{"PostBadPaddingInconsistent", func() req {
			q, b := signedEnc(rawEncrypt(t, testAppKey, uint32(len(plain)), string(plain), testCorpID, func(p []byte) []byte {
				n := 32 - len(p)%32
				if n < 2 {
					n += 32
				}
				p = append(p, bytes.Repeat([]byte{byte(n)}, n)...)
				p[len(p)-2] ^= 0x01 // one padding byte disagrees
				return p
			}))
			return post(q, b)
		}(), 400},
		{"PostPaddingOver32", func() req {
			q, b := signedEnc(rawEncrypt(t, testAppKey, uint32(len(plain)), string(plain), testCorpID, func(p []byte) []byte {
				n := 48 - len(p)%16 // 33..48 bytes of value n: valid PKCS#7 for no block size WeCom uses
				return append(p, bytes.Repeat([]byte{byte(n)}, n)...)
			}))
			return post(q, b)
		}(), 400},
		{"PostHugeMsgLen", func() req {
			q, b := signedEnc(rawEncrypt(t, testAppKey, 0xFFFFFFF0, string(plain), testCorpID, pkcs7x32))
			return post(q, b)
		}(), 400},
		{"PostMsgLenBeyondPlaintext", func() req {
			q, b := signedEnc(rawEncrypt(t, testAppKey, uint32(len(plain)+len(testCorpID)+1), string(plain), testCorpID, pkcs7x32))
			return post(q, b)
		}(), 400},
		{"PostWrongCorpID", post(otherCorp.query, otherCorp.body), 400},
		{"PostWrongCorpIDRaw", func() req {
			q, b := signedEnc(rawEncrypt(t, testAppKey, uint32(len(plain)), string(plain), "wwEVIL", pkcs7x32))
			return post(q, b)
		}(), 400},
		{"PostInnerPlaintextNotXML", post(notXML.query, notXML.body), 400},
		{"PostOversizeBody", post(good.query, append(bytes.Repeat([]byte(" "), 70<<10), good.body...)), 413},
		{"PostOversizeChunked", req{http.MethodPost, "/wecom/callback", good.query,
			append(bytes.Repeat([]byte(" "), 70<<10), good.body...), true}, 413},
		{"PostDoctypeEntity", post(good.query, []byte(`<!DOCTYPE xml [<!ENTITY e "`+encGood+`">]><xml><Encrypt>&e;</Encrypt></xml>`)), 400},
		{"GetNoEchostr", get(q("msg_signature", echoSig, "timestamp", ts, "nonce", nonce)), 400},
		{"GetNoSignature", get(q("timestamp", ts, "nonce", nonce, "echostr", echo)), 400},
		{"GetNoTimestamp", get(q("msg_signature", echoSig, "nonce", nonce, "echostr", echo)), 400},
		{"GetNoNonce", get(q("msg_signature", echoSig, "timestamp", ts, "echostr", echo)), 400},
		{"GetDuplicateEchostr", get(getQ(echoSig, echo) + "&echostr=" + url.QueryEscape(echo)), 400},
		{"GetBadSignature", get(getQ(sign(testAppToken, ts, nonce, "x"), echo)), 403},
		{"GetContactsSignature", get(getQ(sign(testContactsToken, ts, nonce, echo), echo)), 403},
		{"GetEchostrGarbage", get(getQ(sign(testAppToken, ts, nonce, "!!garbage!!"), "!!garbage!!")), 400},
		{"GetEchostrWrongCorp", get(getQ(echoOtherSig, echoOtherCorp)), 400},
		{"GetEchostrOversize", func() req {
			big := strings.Repeat("A", 8<<10)
			return get(getQ(sign(testAppToken, ts, nonce, big), big))
		}(), 400},
		{"Put", req{http.MethodPut, "/wecom/callback", good.query, good.body, false}, 405},
		{"Delete", req{http.MethodDelete, "/wecom/callback", good.query, nil, false}, 405},
		{"PatchContacts", req{http.MethodPatch, "/wecom/contacts", good.query, good.body, false}, 405},
		{"Head", req{http.MethodHead, "/wecom/callback", getQ(echoSig, echo), nil, false}, 405},
	}
	if len(tests) < 20 {
		t.Fatalf("only %d kinds of bad input", len(tests))
	}

	before := e.snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.req.body
			var r response
			if tt.req.chunked {
				r = e.doReader(tt.req.method, tt.req.path, tt.req.query, io.MultiReader(bytes.NewReader(body)))
			} else {
				r = e.do(tt.req.method, tt.req.path, tt.req.query, body)
			}
			if r.status != tt.want {
				t.Errorf("status %d, want %d (body %.200q)", r.status, tt.want, r.body)
			}
			if r.status >= 500 {
				t.Errorf("server error %d for bad input", r.status)
			}
			if tt.want == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	if after := e.snapshot(); after != before {
		t.Errorf("bad input changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if logs := e.logs.String(); strings.Contains(logs, "panic") {
		t.Errorf("a panic was logged:\n%s", logs)
	}
	for _, secret := range []string{testAppToken, testAppKey, testContactsToken, testContactsKey} {
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("a secret reached the log")
		}
	}

	// The genuine delivery, never consumed by its broken variants, still applies.
	if r := e.post(good); r.status != http.StatusOK {
		t.Fatalf("genuine delivery: status %d", r.status)
	}
	if got := e.binding(b.ID); got.Status != app.StatusActive {
		t.Errorf("genuine delivery not applied: %s", got.Status)
	}
	m := e.metricsText()
	for _, want := range []string{
		`wecampus_callbacks_total{channel="app",kind="unknown",result="bad_signature"}`,
		`wecampus_callbacks_total{channel="app",kind="unknown",result="stale"} 2`,
		`wecampus_callbacks_total{channel="app",kind="unknown",result="wrong_corp"} 2`,
		`wecampus_callbacks_total{channel="app",kind="unknown",result="malformed"}`,
		`wecampus_callbacks_total{channel="contacts",kind="unknown",result="bad_signature"} 1`,
		`wecampus_callbacks_total{channel="app",kind="verify",result="bad_signature"} 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "wecampus_callbacks_total"))
		}
	}
}

// doReader is do with a body of unknown length (sent chunked).
func (e *env) doReader(method, path, rawQuery string, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path+"?"+rawQuery, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if req.ContentLength != 0 {
		e.t.Fatalf("test bug: Content-Length %d set", req.ContentLength)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		// The server may close the connection after refusing a body it did not read.
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, body: b}
	e.checkPage(method+" "+path, r)
	return r
}

// between returns the bytes of s between the first from and the following to.
func between(s []byte, from, to string) []byte {
	i := bytes.Index(s, []byte(from))
	if i < 0 {
		return nil
	}
	rest := s[i+len(from):]
	j := bytes.Index(rest, []byte(to))
	if j < 0 {
		return nil
	}
	return rest[:j]
}
