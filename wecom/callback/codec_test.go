package callback

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wecampus/wecampus/app"
)

// Official vectors (WECOM.md §5.6; sbzhu/weworkapi_golang sample.go).
const (
	testToken = "QDG6eK"
	testKey   = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
	testCorp  = "wx5823bf96d3bd56c7"

	v1Sig     = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
	v1TS      = "1409659589"
	v1Nonce   = "263014780"
	v1EchoStr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
	v1Plain   = "1616140317555161061"

	v2Sig     = "477715d11cdb4164915debcba66cb864d751f3e6"
	v2TS      = "1409659813"
	v2Nonce   = "1372623149"
	v2Random  = "0960688932c47ef1"
	v2Encrypt = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
	v2Body    = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[" + v2Encrypt + "]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"

	v3Random  = "0123456789abcdef"
	v3Plain   = "<xml><ToUserName><![CDATA[mycreate]]></ToUserName><FromUserName><![CDATA[wx5823bf96d3bd56c7]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId><AgentID>128</AgentID></xml>"
	v3Encrypt = "sKqRbbiSUnDhFHOvPjtUMdc23JsNXVqHAPPZdO0pIWIMYDThPIeGEfKX2v40MaN9wqY6jfiEfXjU91lWT29R5DJekiGh+kvvWbgJb/xv+e4E7ohGxVjHMNbvtW/W79/IDuKgVJBfBuHgGc9otUO0w1l7Hsae/Ln6/jSCx2GMGlPTrk/Pd9Du8oTb3PrIs9a90wxwbaI9txmYwPqRSx+UWHWpEqcaMDQrfWyNOrIC1LMxfJN98WVM1lo7rHKcEzvuCkg0KtnJTML2WgkG7/evV+9gUXmIvHuAUwYvYhHEQjwQc8mFWnT1QCHyMMAaTYTs9YkB/njRL+wc5wMGWfU13eiwnl5qqIiQ7mvzi8TevQtz+Svc7SLFfrDfOWKuQmQOeAl9qFb+6QvXPBwEA1jAHo2cjnyeAPiQSi0YuLrvv4GqcDtRnbUKYlOP6sETKok0mOls1Z87pkjkonVbXJWABw=="
	v3Sig     = "d9cdf134dbf5386e31896eb2a79c68dbe53e8cc2"
)

// testCodec returns a codec with the official credentials, its clock at unix second now.
func testCodec(tb testing.TB, now int64, opts ...Option) *Codec {
	tb.Helper()
	opts = append([]Option{WithNow(func() time.Time { return time.Unix(now, 0) })}, opts...)
	c, err := New(testCorp, testToken, testKey, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// envelopeEncrypt extracts the Encrypt value of a body.
func envelopeEncrypt(tb testing.TB, body []byte) string {
	tb.Helper()
	env, err := parseEnvelope(body)
	if err != nil {
		tb.Fatal(err)
	}
	return string(env.encrypt)
}

func TestVerifyURLOfficialVector(t *testing.T) {
	c := testCodec(t, 2_000_000_000) // GET has no timestamp window
	got, err := c.VerifyURL(v1Sig, v1TS, v1Nonce, v1EchoStr)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != v1Plain {
		t.Errorf("got %q, want %q", got, v1Plain)
	}
}

func TestOpenOfficialVector(t *testing.T) {
	c := testCodec(t, 1409659813)
	in, err := c.Open(v2Sig, v2TS, v2Nonce, []byte(v2Body), app.ChannelApp)
	if err != nil {
		t.Fatal(err)
	}
	want := app.Inbound{Channel: app.ChannelApp, ToUser: testCorp, FromUser: "mycreate", CreateTime: 1409659813,
		MsgType: "text", Content: "hello", MsgID: "4561255354251345929", AgentID: "218"}
	if *in != want {
		t.Errorf("got  %+v\nwant %+v", *in, want)
	}

	// The decrypted plaintext is exactly testdata/v2_text.xml (284 bytes, with newlines).
	sc := c.get()
	msg, err := decrypt(c, sc, v2Encrypt)
	if err != nil {
		t.Fatal(err)
	}
	if want := readFixture(t, "v2_text.xml"); !bytes.Equal(msg, want) || len(msg) != 284 {
		t.Errorf("plaintext %d bytes %q", len(msg), msg)
	}
	if got := string(sc.plain[:16]); got != v2Random {
		t.Errorf("random prefix %q, want %q", got, v2Random)
	}
}

// TestEncryptEventOfficialVector re-encrypts V2's plaintext with V2's random prefix: body and
// signature are byte-identical to the official POST.
func TestEncryptEventOfficialVector(t *testing.T) {
	c := testCodec(t, 1409659813, WithRand(strings.NewReader(v2Random)))
	body, sig, err := c.EncryptEvent(readFixture(t, "v2_text.xml"), v2TS, v2Nonce)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != v2Body {
		t.Errorf("body\n%s\nwant\n%s", body, v2Body)
	}
	if sig != v2Sig {
		t.Errorf("signature %s, want %s", sig, v2Sig)
	}
}

// TestReplyOfficialVector is V3: the passive reply plaintext encrypted with the random prefix
// "0123456789abcdef" gives the known Encrypt and MsgSignature.
func TestReplyOfficialVector(t *testing.T) {
	c := testCodec(t, 1409659813, WithRand(strings.NewReader(v3Random)))
	body, sig, err := c.EncryptEvent([]byte(v3Plain), v2TS, v2Nonce)
	if err != nil {
		t.Fatal(err)
	}
	if got := envelopeEncrypt(t, body); got != v3Encrypt {
		t.Errorf("Encrypt\n%s\nwant\n%s", got, v3Encrypt)
	}
	if sig != v3Sig {
		t.Errorf("MsgSignature %s, want %s", sig, v3Sig)
	}
	// AgentID of the plaintext is copied to the envelope, as WeCom does.
	if !bytes.HasSuffix(body, []byte("<AgentID><![CDATA[128]]></AgentID></xml>")) {
		t.Errorf("envelope %s", body)
	}
}

func TestEncryptEchoOfficialVector(t *testing.T) {
	// V1's random prefix is not published; encrypt with one and check it against silenceper.
	const random = "abcdefghijklmnop"
	c := testCodec(t, 0, WithRand(strings.NewReader(random)))
	echo, sig, err := c.EncryptEcho(v1Plain, v1TS, v1Nonce)
	if err != nil {
		t.Fatal(err)
	}
	want, err := util.EncryptMsg([]byte(random), []byte(v1Plain), testCorp, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if echo != string(want) {
		t.Errorf("echostr %s, want %s", echo, want)
	}
	if wantSig := util.Signature(testToken, v1TS, v1Nonce, echo); sig != wantSig {
		t.Errorf("signature %s, want %s", sig, wantSig)
	}
	got, err := testCodec(t, 0).VerifyURL(sig, v1TS, v1Nonce, echo)
	if err != nil || string(got) != v1Plain {
		t.Errorf("VerifyURL = %q, %v", got, err)
	}
}

// TestSeal checks the passive reply against an independent implementation: silenceper's
// EncryptMsg and Signature over the expected plaintext give the same envelope, byte for byte.
func TestSeal(t *testing.T) {
	c := testCodec(t, 1348831860, WithRand(strings.NewReader(v3Random)))
	in := &app.Inbound{ToUser: testCorp, FromUser: "mycreate", MsgType: "text", Content: "hi"}
	body, err := c.Seal(in, app.Reply{Text: "this is a test"}, v2TS, v2Nonce)
	if err != nil {
		t.Fatal(err)
	}
	plain := "<xml><ToUserName><![CDATA[mycreate]]></ToUserName><FromUserName><![CDATA[wx5823bf96d3bd56c7]]></FromUserName>" +
		"<CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content></xml>"
	enc, err := util.EncryptMsg([]byte(v3Random), []byte(plain), testCorp, testKey)
	if err != nil {
		t.Fatal(err)
	}
	sig := util.Signature(testToken, v2TS, v2Nonce, string(enc))
	want := "<xml><Encrypt><![CDATA[" + string(enc) + "]]></Encrypt><MsgSignature><![CDATA[" + sig +
		"]]></MsgSignature><TimeStamp>1409659813</TimeStamp><Nonce><![CDATA[1372623149]]></Nonce></xml>"
	if string(body) != want {
		t.Errorf("reply\n%s\nwant\n%s", body, want)
	}
	got, err := c.OpenReply(body)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != plain {
		t.Errorf("plaintext\n%s\nwant\n%s", got, plain)
	}
}

func TestSealEmptyAndInvalid(t *testing.T) {
	c := testCodec(t, 1700000000)
	in := &app.Inbound{FromUser: "u", MsgType: "text"}
	if body, err := c.Seal(in, app.Reply{}, "1", "2"); body != nil || err != nil {
		t.Errorf("empty reply: %q, %v; want nil, nil", body, err)
	}
	if _, err := c.Seal(nil, app.Reply{Text: "x"}, "1", "2"); err == nil {
		t.Error("nil inbound: no error")
	}
	if _, err := c.Seal(&app.Inbound{}, app.Reply{Text: "x"}, "1", "2"); err == nil {
		t.Error("no FromUser: no error")
	}
	if _, err := c.Seal(in, app.Reply{Text: strings.Repeat("字", 683)}, "1", "2"); err == nil {
		t.Error("2049-byte reply: no error")
	}
	if _, err := c.Seal(in, app.Reply{Text: strings.Repeat("字", 682)}, "1", "2"); err != nil {
		t.Errorf("2046-byte reply: %v", err)
	}
}

// TestSealGeneratesTimestampAndNonce: without the request's, the envelope gets now and a random
// 10-digit nonce, and still verifies.
func TestSealGeneratesTimestampAndNonce(t *testing.T) {
	c := testCodec(t, 1700000000)
	body, err := c.Seal(&app.Inbound{FromUser: "u"}, app.Reply{Text: "x"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	env, err := parseEnvelope(body)
	if err != nil {
		t.Fatal(err)
	}
	if string(env.timeStamp) != "1700000000" || len(env.nonce) != 10 {
		t.Errorf("TimeStamp %q Nonce %q", env.timeStamp, env.nonce)
	}
	if _, err := c.OpenReply(body); err != nil {
		t.Fatal(err)
	}
	// Values that would not survive the XML unchanged are replaced rather than echoed.
	for _, q := range [][2]string{{"17e8", "1"}, {"1", "\xbd"}, {"1", "a\x00b"}, {"1", strings.Repeat("9", 129)}, {"-1", "1"}} {
		body, err := c.Seal(&app.Inbound{FromUser: "u"}, app.Reply{Text: "x"}, q[0], q[1])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.OpenReply(body); err != nil {
			t.Errorf("%q: %v", q, err)
		}
		env, _ := parseEnvelope(body)
		if ts, n := string(env.timeStamp), string(env.nonce); ts == q[0] && n == q[1] {
			t.Errorf("%q echoed", q)
		}
	}
	// Printable nonces are echoed verbatim, even with XML metacharacters.
	body, err = c.Seal(&app.Inbound{FromUser: "u"}, app.Reply{Text: "x"}, "42", "a<b>&]]>c")
	if err != nil {
		t.Fatal(err)
	}
	if env, err := parseEnvelope(body); err != nil || string(env.nonce) != "a<b>&]]>c" || string(env.timeStamp) != "42" {
		t.Errorf("envelope %s: %v", body, err)
	}
	if _, err := c.OpenReply(body); err != nil {
		t.Error(err)
	}
}

// TestSealOpenReplyContent: reply texts with XML-hostile content survive Seal → OpenReply →
// parse.
func TestSealOpenReplyContent(t *testing.T) {
	c := testCodec(t, 1700000000)
	for _, text := range []string{
		"已绑定学号 2021xxxx",
		"a]]>b",
		"]]>",
		"]]]]>>",
		"<xml><Content>inject</Content></xml>",
		"line1\r\nline2\rline3\n&amp;",
		strings.Repeat("帮", 682),
	} {
		in := &app.Inbound{FromUser: "user]]>1", MsgType: "event"}
		body, err := c.Seal(in, app.Reply{Text: text}, "1700000000", "123")
		if err != nil {
			t.Fatal(err)
		}
		plain, err := c.OpenReply(body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseInbound(string(plain), "")
		if err != nil {
			t.Fatalf("%s: %v", plain, err)
		}
		if got.Content != text || got.ToUser != in.FromUser || got.FromUser != testCorp || got.MsgType != "text" ||
			got.CreateTime != 1700000000 {
			t.Errorf("reply to %q parsed as %+v", text, got)
		}
	}
}

func TestOpenRoundTrip(t *testing.T) {
	c := testCodec(t, 1700000000)
	for _, name := range []string{"click_help.xml", "view.xml", "enter_agent.xml", "subscribe.xml",
		"unsubscribe.xml", "change_contact_create_user.xml", "change_contact_update_user.xml",
		"change_contact_delete_user.xml", "location.xml", "image.xml", "batch_job_result.xml",
		"text_plain_entities.xml", "v2_text.xml", "click_help_declaration.xml"} {
		plain := readFixture(t, name)
		want, err := parseInbound(string(plain), app.ChannelContacts)
		if err != nil {
			t.Fatal(err)
		}
		body, sig, err := c.EncryptEvent(plain, "1700000000", "42")
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Open(sig, "1700000000", "42", body, app.ChannelContacts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if *got != *want {
			t.Errorf("%s:\ngot  %+v\nwant %+v", name, *got, *want)
		}
		// silenceper decrypts what we encrypt.
		if _, msg, err := util.DecryptMsg(testCorp, envelopeEncrypt(t, body), testKey); err != nil || !bytes.Equal(msg, plain) {
			t.Errorf("%s: silenceper DecryptMsg: %v", name, err)
		}
	}
}

// TestCryptoAgainstSilenceper compares encryption and decryption with silenceper's util for
// messages of every length around the 32-byte padding boundaries.
func TestCryptoAgainstSilenceper(t *testing.T) {
	random := []byte("RANDOMRANDOM1234")
	for n := 0; n <= 200; n++ {
		msg := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		c := testCodec(t, 0, WithRand(bytes.NewReader(random)))
		echo, _, err := c.EncryptEcho(string(msg), "1", "2")
		if err != nil {
			t.Fatal(err)
		}
		want, err := util.EncryptMsg(random, msg, testCorp, testKey)
		if err != nil {
			t.Fatal(err)
		}
		if echo != string(want) {
			t.Fatalf("len %d: ciphertext differs", n)
		}
		sc := c.get()
		got, err := decrypt(c, sc, echo)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("len %d: decrypt = %q, %v", n, got, err)
		}
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name, corp, token, key string
	}{
		{"EmptyCorp", "", testToken, testKey},
		{"EmptyToken", testCorp, "", testKey},
		{"ShortKey", testCorp, testToken, testKey[:42]},
		{"LongKey", testCorp, testToken, testKey + "A"},
		{"KeyWithPlus", testCorp, testToken, "+" + testKey[1:]},
		{"KeyWithSlash", testCorp, testToken, testKey[:42] + "/"},
		{"KeyWithPad", testCorp, testToken, testKey[:42] + "="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := New(tt.corp, tt.token, tt.key); err == nil {
				t.Fatalf("got %v, want an error", c)
			} else if strings.Contains(err.Error(), testKey[:10]) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
	c, err := New(testCorp, testToken, testKey, nil, WithNow(nil), WithRand(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.String(), fmt.Sprint(c), c.LogValue().String()} {
		if strings.Contains(s, testToken) || strings.Contains(s, testKey) || !strings.Contains(s, testCorp) {
			t.Errorf("codec prints as %q", s)
		}
	}
}

// sealRaw plays a hostile or broken WeCom: it encrypts raw (already "padded", any content) and
// signs the result, so that every check after the signature can be reached.
func sealRaw(tb testing.TB, c *Codec, raw []byte, timestamp, nonce string) (body []byte, sig string) {
	tb.Helper()
	block, err := aes.NewCipher(c.key[:])
	if err != nil {
		tb.Fatal(err)
	}
	ct := append([]byte(nil), raw...)
	cipher.NewCBCEncrypter(block, c.key[:16]).CryptBlocks(ct, ct)
	return signEncrypt(c, base64.StdEncoding.EncodeToString(ct), timestamp, nonce)
}

// signEncrypt wraps an arbitrary Encrypt value in an envelope with a valid signature.
func signEncrypt(c *Codec, enc, timestamp, nonce string) (body []byte, sig string) {
	s, _ := signature(nil, c.token, timestamp, nonce, enc)
	return []byte("<xml><ToUserName><![CDATA[" + c.corpID + "]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"), string(s[:])
}

// rawPlaintext builds random ‖ msg_len ‖ msg ‖ receiveid ‖ PKCS#7 padding to 32 bytes, with
// msg_len given explicitly so that it can lie.
func rawPlaintext(msgLen uint32, msg, receiveID string) []byte {
	b := []byte("0123456789abcdef")
	b = binary.BigEndian.AppendUint32(b, msgLen)
	b = append(b, msg...)
	b = append(b, receiveID...)
	n := padBlock - len(b)%padBlock
	return append(b, bytes.Repeat([]byte{byte(n)}, n)...)
}

// mutate returns a copy of b with f applied.
func mutate(b []byte, f func([]byte)) []byte {
	b = append([]byte(nil), b...)
	f(b)
	return b
}

func TestOpenRejects(t *testing.T) {
	const now = 1700000000
	const ts, nonce = "1700000000", "42"
	c := testCodec(t, now)
	event := readFixture(t, "click_help.xml")
	body, sig, err := c.EncryptEvent(event, ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	other, err := New("wwanothercorp", testToken, testKey)
	if err != nil {
		t.Fatal(err)
	}
	otherBody, otherSig, err := other.EncryptEvent(event, ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	otherToken, err := New(testCorp, "AnotherToken", testKey)
	if err != nil {
		t.Fatal(err)
	}
	_, tokenSig, err := otherToken.EncryptEvent(event, ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	enc := envelopeEncrypt(t, body)
	ct, _ := base64.StdEncoding.DecodeString(enc)
	signed := func(enc string) (string, []byte) { b, s := signEncrypt(c, enc, ts, nonce); return s, b }
	raw := func(r []byte) (string, []byte) { b, s := sealRaw(t, c, r, ts, nonce); return s, b }
	plain := func(p string) (string, []byte) {
		b, s, err := c.EncryptEvent([]byte(p), ts, nonce)
		if err != nil {
			t.Fatal(err)
		}
		return s, b
	}
	flip := []byte(sig)
	flip[0] ^= 1

	type input struct {
		sig, ts, nonce string
		body           []byte
	}
	with := func(s string, b []byte) input { return input{s, ts, nonce, b} }
	tests := []struct {
		name string
		in   input
		want error
	}{
		{"BadSignature", input{string(flip), ts, nonce, body}, ErrSignature},
		{"UppercaseSignature", input{strings.ToUpper(sig), ts, nonce, body}, ErrSignature},
		{"OtherToken", input{tokenSig, ts, nonce, body}, ErrSignature},
		{"EmptySignature", input{"", ts, nonce, body}, ErrSignature},
		{"ShortSignature", input{sig[:39], ts, nonce, body}, ErrSignature},
		{"LongSignature", input{sig + "0", ts, nonce, body}, ErrSignature},
		{"SignatureOverOtherNonce", input{sig, ts, "43", body}, ErrSignature},
		{"TamperedBody", input{sig, ts, nonce, bytes.Replace(body, []byte(enc[:8]), []byte("AAAAAAAA"), 1)}, ErrSignature},
		{"StalePast", input{sig, "1699999699", nonce, body}, ErrStale},
		{"StaleFuture", input{sig, "1700000301", nonce, body}, ErrStale},
		{"StaleZero", input{sig, "0", nonce, body}, ErrStale},
		{"StaleHuge", input{sig, "9223372036854775807", nonce, body}, ErrStale},
		{"TimestampOverflow", input{sig, "99999999999999999999", nonce, body}, ErrMalformed},
		{"TimestampNotNumber", input{sig, "17000000x0", nonce, body}, ErrMalformed},
		{"TimestampNegative", input{sig, "-1700000000", nonce, body}, ErrMalformed},
		{"TimestampEmpty", input{sig, "", nonce, body}, ErrMalformed},
		{"TimestampTooLong", input{sig, strings.Repeat("1", 21), nonce, body}, ErrMalformed},
		{"NonceEmpty", input{sig, ts, "", body}, ErrMalformed},
		{"NonceTooLong", input{sig, ts, strings.Repeat("1", 129), body}, ErrMalformed},
		{"WrongCorp", input{otherSig, ts, nonce, otherBody}, ErrCorpID},
		{"EmptyBody", input{sig, ts, nonce, nil}, ErrMalformed},
		{"HugeBody", input{sig, ts, nonce, append(bytes.Repeat([]byte(" "), maxBody), body...)}, ErrMalformed},
		{"GarbageBody", input{sig, ts, nonce, []byte("\x00\xff garbage")}, ErrMalformed},
		{"JSONBody", input{sig, ts, nonce, []byte(`{"Encrypt":"` + enc + `"}`)}, ErrMalformed},
		{"UnclosedEnvelope", input{sig, ts, nonce, body[:len(body)-6]}, ErrMalformed},
		{"MissingEncrypt", input{sig, ts, nonce, []byte("<xml><ToUserName><![CDATA[x]]></ToUserName></xml>")}, ErrMalformed},
		{"EmptyEncrypt", input{sig, ts, nonce, []byte("<xml><Encrypt><![CDATA[]]></Encrypt></xml>")}, ErrMalformed},
		{"DuplicateEncrypt", input{sig, ts, nonce, []byte("<xml><Encrypt>" + enc + "</Encrypt><Encrypt>" + enc + "</Encrypt></xml>")}, ErrMalformed},
		{"NestedEncrypt", input{sig, ts, nonce, []byte("<xml><Encrypt><a>" + enc + "</a></Encrypt></xml>")}, ErrMalformed},
		{"BadBase64", with(signed("!!!!" + enc[4:])), ErrMalformed},
		{"Base64NotMultipleOf16", with(signed(base64.StdEncoding.EncodeToString(ct[:20]))), ErrMalformed},
		{"Base64TooShort", with(signed("AAAA")), ErrMalformed},
		{"TruncatedCiphertext", with(signed(base64.StdEncoding.EncodeToString(ct[:len(ct)-16]))), ErrMalformed},
		{"TruncatedBase64", with(signed(enc[:len(enc)-3])), ErrMalformed},
		{"PadZero", with(raw(mutate(rawPlaintext(3, "abc", testCorp), func(b []byte) { b[len(b)-1] = 0 }))), ErrMalformed},
		{"Pad33", with(raw(bytes.Repeat([]byte{33}, 64))), ErrMalformed},
		{"PadInconsistent", with(raw(mutate(rawPlaintext(3, "abc", testCorp), func(b []byte) { b[len(b)-2]++ }))), ErrMalformed},
		{"PadFirstByteInconsistent", with(raw(mutate(rawPlaintext(3, "abc", testCorp), func(b []byte) { b[len(b)-23]-- }))), ErrMalformed},
		{"PadBeyondCiphertext", with(raw(append([]byte("0123456789abcde"), 20))), ErrMalformed},
		{"PlaintextShorterThanHeader", with(raw(append([]byte("0123456789abcde"), 1))), ErrMalformed},
		{"MsgLenBeyondPlaintext", with(raw(rawPlaintext(4, "abc", ""))), ErrMalformed},
		{"MsgLenHuge", with(raw(rawPlaintext(0xFFFFFFFF, "abc", testCorp))), ErrMalformed},
		{"MsgLenSignBit", with(raw(rawPlaintext(0x80000003, "abc", testCorp))), ErrMalformed},
		{"ReceiveIDEmpty", with(raw(rawPlaintext(3, "abc", ""))), ErrCorpID},
		{"ReceiveIDPrefix", with(raw(rawPlaintext(3, "abc", testCorp[:17]))), ErrCorpID},
		{"ReceiveIDLonger", with(raw(rawPlaintext(3, "abc", testCorp+"x"))), ErrCorpID},
		{"MsgLenShiftsReceiveID", with(raw(rawPlaintext(2, "abc", testCorp))), ErrCorpID},
		{"RawControl", with(raw(rawPlaintext(uint32(len(event)), string(event), testCorp))), nil},
		{"GarbageInnerXML", with(plain("hello")), ErrMalformed},
		{"EmptyInnerXML", with(plain("")), ErrMalformed},
		{"InnerWithoutMsgType", with(plain("<xml><Content>hi</Content></xml>")), ErrMalformed},
		{"InnerOversizeField", with(plain("<xml><MsgType>text</MsgType><Content>" + strings.Repeat("x", maxField+1) + "</Content></xml>")), ErrMalformed},
		{"InnerBadCreateTime", with(plain("<xml><MsgType>text</MsgType><CreateTime>x</CreateTime></xml>")), ErrMalformed},
		{"EnvelopePI", input{sig, ts, nonce, append([]byte("<?php echo 1 ?>"), body...)}, ErrMalformed},
		{"EnvelopeDeclarationGBK", input{sig, ts, nonce, append([]byte(`<?xml version="1.0" encoding="GBK"?>`), body...)}, ErrMalformed},
		{"EnvelopeDeclarationUnterminated", input{sig, ts, nonce, append([]byte(`<?xml version="1.0"`), body...)}, ErrMalformed},
		{"EnvelopeDeclarationTwice", input{sig, ts, nonce, append([]byte(`<?xml version="1.0"?><?xml version="1.0"?>`), body...)}, ErrMalformed},
		{"InnerPI", with(plain("<?xml-stylesheet href=\"a\"?>" + string(event))), ErrMalformed},
		{"InnerDeclarationVersion2", with(plain(`<?xml version="2.0"?>` + string(event))), ErrMalformed},
		{"InnerDeclarationGarbage", with(plain("<?xml \x00\xff?>" + string(event))), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := c.Open(tt.in.sig, tt.in.ts, tt.in.nonce, tt.in.body, app.ChannelApp)
			if tt.want == nil {
				// The control: the raw helper itself produces acceptable input.
				if err != nil || in.EventKey != "HELP" {
					t.Fatalf("control: %+v, %v", in, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || in != nil {
				t.Fatalf("got %+v, %v; want %v", in, err, tt.want)
			}
			for _, e := range []error{ErrSignature, ErrStale, ErrMalformed, ErrCorpID} {
				if e != tt.want && errors.Is(err, e) {
					t.Errorf("%v also matches %v", err, e)
				}
			}
		})
	}
}

// TestOpenDeclaration: a leading XML declaration (with a BOM and line breaks around it, as a proxy
// might add) is accepted on the envelope, on the decrypted event and on a passive reply envelope.
func TestOpenDeclaration(t *testing.T) {
	const ts, nonce = "1700000000", "42"
	const decl = "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
	c := testCodec(t, 1700000000)
	event := readFixture(t, "click_help.xml")
	want, err := parseInbound(string(event), app.ChannelApp)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name         string
		outer, inner bool
	}{{"Envelope", true, false}, {"Event", false, true}, {"Both", true, true}} {
		plain := event
		if tt.inner {
			plain = append([]byte(decl), event...)
		}
		body, sig, err := c.EncryptEvent(plain, ts, nonce)
		if err != nil {
			t.Fatal(err)
		}
		if tt.outer {
			body = append([]byte(decl), body...)
		}
		got, err := c.Open(sig, ts, nonce, body, app.ChannelApp)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if *got != *want {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tt.name, *got, *want)
		}
	}
	reply, err := c.Seal(want, app.Reply{Text: "帮助"}, ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenReply(append([]byte(decl), reply...)); err != nil {
		t.Errorf("reply with a declaration: %v", err)
	}
}

// TestOpenWindow: the replay window is inclusive, symmetric, configurable and can be disabled.
func TestOpenWindow(t *testing.T) {
	const now = 1700000000
	event := readFixture(t, "click_help.xml")
	tests := []struct {
		ts     int64
		maxAge time.Duration
		want   error
	}{
		{now, 5 * time.Minute, nil},
		{now - 300, 5 * time.Minute, nil},
		{now + 300, 5 * time.Minute, nil},
		{now - 301, 5 * time.Minute, ErrStale},
		{now + 301, 5 * time.Minute, ErrStale},
		{now - 61, time.Minute, ErrStale},
		{now - 60, time.Minute, nil},
		{1, 0, nil},
		{now + 86400*365, -1, nil},
	}
	for _, tt := range tests {
		c := testCodec(t, now, WithMaxAge(tt.maxAge))
		ts := strconv.FormatInt(tt.ts, 10)
		body, sig, err := c.EncryptEvent(event, ts, "n")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Open(sig, ts, "n", body, app.ChannelApp); !errors.Is(err, tt.want) {
			t.Errorf("ts %d maxAge %s: %v, want %v", tt.ts, tt.maxAge, err, tt.want)
		}
	}
	// The default window is 5 minutes.
	c, err := New(testCorp, testToken, testKey)
	if err != nil {
		t.Fatal(err)
	}
	for off, want := range map[time.Duration]error{-4 * time.Minute: nil, 6 * time.Minute: ErrStale, -6 * time.Minute: ErrStale} {
		ts := strconv.FormatInt(time.Now().Add(off).Unix(), 10)
		body, sig, err := c.EncryptEvent(event, ts, "n")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Open(sig, ts, "n", body, app.ChannelApp); !errors.Is(err, want) {
			t.Errorf("offset %s: %v, want %v", off, err, want)
		}
	}
}

func TestVerifyURLRejects(t *testing.T) {
	c := testCodec(t, 0)
	other, err := New("wwanothercorp", testToken, testKey)
	if err != nil {
		t.Fatal(err)
	}
	otherEcho, otherSig, err := other.EncryptEcho("123", v1TS, v1Nonce)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(echo string) (string, string) {
		s, _ := signature(nil, testToken, v1TS, v1Nonce, echo)
		return string(s[:]), echo
	}
	tests := []struct {
		name, sig, ts, nonce, echo string
		want                       error
	}{
		{"BadSignature", strings.Replace(v1Sig, "5", "6", 1), v1TS, v1Nonce, v1EchoStr, ErrSignature},
		{"OtherTimestamp", v1Sig, "1409659590", v1Nonce, v1EchoStr, ErrSignature},
		// A query parser that turns '+' into ' ' breaks the signature (WECOM.md §5.2).
		{"PlusAsSpace", v1Sig, v1TS, v1Nonce, strings.ReplaceAll(v1EchoStr, "+", " "), ErrSignature},
		{"EmptyEcho", v1Sig, v1TS, v1Nonce, "", ErrMalformed},
		{"HugeEcho", v1Sig, v1TS, v1Nonce, strings.Repeat("A", maxEchoStr+1), ErrMalformed},
		{"EmptyTimestamp", v1Sig, "", v1Nonce, v1EchoStr, ErrMalformed},
		{"EmptyNonce", v1Sig, v1TS, "", v1EchoStr, ErrMalformed},
		{"WrongCorp", otherSig, v1TS, v1Nonce, otherEcho, ErrCorpID},
	}
	for _, f := range []struct{ name, echo string }{
		{"BadBase64", "%%%%" + v1EchoStr[4:]},
		{"Truncated", v1EchoStr[:44]},
		{"NotBlockMultiple", base64.StdEncoding.EncodeToString(make([]byte, 17))},
	} {
		s, e := sign(f.echo)
		tests = append(tests, struct {
			name, sig, ts, nonce, echo string
			want                       error
		}{f.name, s, v1TS, v1Nonce, e, ErrMalformed})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.VerifyURL(tt.sig, tt.ts, tt.nonce, tt.echo)
			if !errors.Is(err, tt.want) || got != nil {
				t.Fatalf("got %q, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestOpenReplyRejects(t *testing.T) {
	c := testCodec(t, 1700000000)
	body, err := c.Seal(&app.Inbound{FromUser: "u"}, app.Reply{Text: "x"}, "1700000000", "42")
	if err != nil {
		t.Fatal(err)
	}
	otherToken, err := New(testCorp, "AnotherToken", testKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherToken.OpenReply(body); !errors.Is(err, ErrSignature) {
		t.Errorf("other token: %v", err)
	}
	for name, b := range map[string][]byte{
		"TamperedTimeStamp": bytes.Replace(body, []byte("<TimeStamp>1700000000<"), []byte("<TimeStamp>1700000001<"), 1),
		"TamperedNonce":     bytes.Replace(body, []byte("[42]"), []byte("[43]"), 1),
	} {
		if _, err := c.OpenReply(b); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, b := range map[string][]byte{
		"Empty":          nil,
		"NoSignature":    bytes.Replace(body, []byte("MsgSignature"), []byte("Signature"), 2),
		"NoTimeStamp":    bytes.Replace(body, []byte("TimeStamp"), []byte("Time"), 2),
		"NoNonce":        bytes.Replace(body, []byte("Nonce"), []byte("Once"), 2),
		"NotAnEnvelope":  []byte("<xml"),
		"TrailingMarkup": append(append([]byte(nil), body...), "<x/>"...),
	} {
		if _, err := c.OpenReply(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestEncryptRequiresParams: the simulator helpers refuse what Open would refuse anyway.
func TestEncryptRequiresParams(t *testing.T) {
	c := testCodec(t, 0)
	if _, _, err := c.EncryptEvent([]byte("<xml/>"), "", "1"); err == nil {
		t.Error("EncryptEvent without timestamp")
	}
	if _, _, err := c.EncryptEvent(make([]byte, maxBody+1), "1", "1"); err == nil {
		t.Error("EncryptEvent of an oversize plaintext")
	}
	if _, _, err := c.EncryptEcho("x", "1", ""); err == nil {
		t.Error("EncryptEcho without nonce")
	}
	failing := testCodec(t, 0, WithRand(strings.NewReader("short")))
	if _, _, err := failing.EncryptEvent([]byte("<xml/>"), "1", "1"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short entropy: %v", err)
	}
	if _, err := failing.Seal(&app.Inbound{FromUser: "u"}, app.Reply{Text: "x"}, "1", "1"); err == nil {
		t.Error("Seal with exhausted entropy")
	}
}

// TestConcurrent exercises the scratch pool and the pooled CBC modes (whose IV must be reset on
// every use) from several goroutines; run with -race.
func TestConcurrent(t *testing.T) {
	c := testCodec(t, 1700000000)
	event := readFixture(t, "change_contact_create_user.xml")
	want, err := parseInbound(string(event), app.ChannelApp)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				nonce := strconv.Itoa(i)
				body, sig, err := c.EncryptEvent(event, "1700000000", nonce)
				if err != nil {
					errs <- err
					return
				}
				in, err := c.Open(sig, "1700000000", nonce, body, app.ChannelApp)
				if err != nil {
					errs <- err
					return
				}
				if *in != *want {
					errs <- fmt.Errorf("got %+v", in)
					return
				}
				reply, err := c.Seal(in, app.Reply{Text: "回复" + nonce}, "1700000000", nonce)
				if err != nil {
					errs <- err
					return
				}
				plain, err := c.OpenReply(reply)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Contains(plain, []byte("<Content><![CDATA[回复"+nonce+"]]></Content>")) {
					errs <- fmt.Errorf("reply %s", plain)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestAllocations guards the performance goal: Open allocates the Inbound and one copy of the
// plaintext; Seal allocates only the returned body.
func TestAllocations(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a normal build")
	}
	const ts, nonce = "1700000000", "1372623149"
	c := testCodec(t, 1700000000)
	body, sig, err := c.EncryptEvent(readFixture(t, "click_help.xml"), ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	in, err := c.Open(sig, ts, nonce, body, app.ChannelApp)
	if err != nil {
		t.Fatal(err)
	}
	reply := app.Reply{Text: benchReply}
	if n := testing.AllocsPerRun(200, func() { _, _ = c.Open(sig, ts, nonce, body, app.ChannelApp) }); n > 2 {
		t.Errorf("Open: %v allocs, want <= 2", n)
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = c.Seal(in, reply, ts, nonce) }); n > 1 {
		t.Errorf("Seal: %v allocs, want <= 1", n)
	}
}
