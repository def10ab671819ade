package callback

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/xml"
	"strconv"
	"testing"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wecampus/wecampus/app"
)

// benchReply is a ~200-byte Chinese help text, the typical passive reply to the HELP click.
const benchReply = "微校园助手使用帮助：\n1. 注册绑定：点击菜单「绑定」，完成统一身份认证后填写手机号。\n" +
	"2. 加入验证：按提示输入手机号和短信验证码。\n3. 解除绑定：点击「解绑」并确认。"

func benchSetup(b *testing.B) (c *Codec, body []byte, sig string) {
	b.Helper()
	const ts, nonce = "1700000000", "1372623149"
	c = testCodec(b, 1700000000)
	body, sig, err := c.EncryptEvent(readFixture(b, "click_help.xml"), ts, nonce)
	if err != nil {
		b.Fatal(err)
	}
	return c, body, sig
}

// BenchmarkCodecClickReply is the codec's share of a HELP click: verify, decrypt and parse the
// POST, then build and encrypt the ~200-byte Chinese text reply (no HTTP).
func BenchmarkCodecClickReply(b *testing.B) {
	const ts, nonce = "1700000000", "1372623149"
	c, body, sig := benchSetup(b)
	reply := app.Reply{Text: benchReply}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		in, err := c.Open(sig, ts, nonce, body, app.ChannelApp)
		if err != nil {
			b.Fatal(err)
		}
		if in.EventKey != "HELP" {
			b.Fatal(in.EventKey)
		}
		if _, err := c.Seal(in, reply, ts, nonce); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecOpen(b *testing.B) {
	const ts, nonce = "1700000000", "1372623149"
	c, body, sig := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(sig, ts, nonce, body, app.ChannelApp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecSeal(b *testing.B) {
	const ts, nonce = "1700000000", "1372623149"
	c, body, sig := benchSetup(b)
	in, err := c.Open(sig, ts, nonce, body, app.ChannelApp)
	if err != nil {
		b.Fatal(err)
	}
	reply := app.Reply{Text: benchReply}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Seal(in, reply, ts, nonce); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseInbound(b *testing.B) {
	src := string(readFixture(b, "click_help.xml"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseInbound(src, app.ChannelApp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseInboundEncodingXML(b *testing.B) {
	src := readFixture(b, "click_help.xml")
	b.ReportAllocs()
	for b.Loop() {
		var v stdInbound
		if err := xml.Unmarshal(src, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// Baseline: the same work done the common way, with silenceper's util and encoding/xml, for
// comparison with BenchmarkCodecClickReply.

type baselineEnvelope struct {
	XMLName    xml.Name `xml:"xml"`
	ToUserName string   `xml:"ToUserName"`
	AgentID    string   `xml:"AgentID"`
	Encrypt    string   `xml:"Encrypt"`
}

type cDATA struct {
	Value string `xml:",cdata"`
}

type baselineReply struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   cDATA    `xml:"ToUserName"`
	FromUserName cDATA    `xml:"FromUserName"`
	CreateTime   int64    `xml:"CreateTime"`
	MsgType      cDATA    `xml:"MsgType"`
	Content      cDATA    `xml:"Content"`
}

type baselineReplyEnvelope struct {
	XMLName      xml.Name `xml:"xml"`
	Encrypt      cDATA    `xml:"Encrypt"`
	MsgSignature cDATA    `xml:"MsgSignature"`
	TimeStamp    string   `xml:"TimeStamp"`
	Nonce        cDATA    `xml:"Nonce"`
}

func BenchmarkBaselineSilenceperEncodingXML(b *testing.B) {
	const ts, nonce = "1700000000", "1372623149"
	_, body, sig := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		var env baselineEnvelope
		if err := xml.Unmarshal(body, &env); err != nil {
			b.Fatal(err)
		}
		if subtle.ConstantTimeCompare([]byte(util.Signature(testToken, ts, nonce, env.Encrypt)), []byte(sig)) != 1 {
			b.Fatal("signature")
		}
		_, msg, err := util.DecryptMsg(testCorp, env.Encrypt, testKey)
		if err != nil {
			b.Fatal(err)
		}
		var in stdInbound
		if err := xml.Unmarshal(msg, &in); err != nil {
			b.Fatal(err)
		}
		plain, err := xml.Marshal(baselineReply{ToUserName: cDATA{in.FromUserName}, FromUserName: cDATA{testCorp},
			CreateTime: 1700000000, MsgType: cDATA{"text"}, Content: cDATA{benchReply}})
		if err != nil {
			b.Fatal(err)
		}
		random := make([]byte, 16)
		if _, err := rand.Read(random); err != nil {
			b.Fatal(err)
		}
		enc, err := util.EncryptMsg(random, plain, testCorp, testKey)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := xml.Marshal(baselineReplyEnvelope{Encrypt: cDATA{string(enc)},
			MsgSignature: cDATA{util.Signature(testToken, ts, nonce, string(enc))}, TimeStamp: ts,
			Nonce: cDATA{nonce}}); err != nil {
			b.Fatal(err)
		}
	}
}

var benchSink int

func BenchmarkSignature(b *testing.B) {
	enc := []byte(v2Encrypt)
	var buf []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var s [sigLen]byte
		s, buf = signature(buf, testToken, v2TS, strconv.Itoa(i&7), enc)
		benchSink += int(s[0])
	}
}
