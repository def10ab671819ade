package wecom

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/xml"
	"strconv"
	"testing"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wecampus/wecampus/app"
)

// cbBenchReply is a ~200-byte Chinese help text, the typical passive reply to the HELP click.
const cbBenchReply = "微校园助手使用帮助：\n1. 注册绑定：点击菜单「绑定」，完成统一身份认证后填写手机号。\n" +
	"2. 加入验证：按提示输入手机号和短信验证码。\n3. 解除绑定：点击「解绑」并确认。"

func cbBenchSetup(b *testing.B) (c *Codec, body []byte, sig string) {
	b.Helper()
	const ts, nonce = "1700000000", "1372623149"
	c = cbTestCodec(b, 1700000000)
	body, sig, err := c.EncryptEvent(cbReadFixture(b, "click_help.xml"), ts, nonce)
	if err != nil {
		b.Fatal(err)
	}
	return c, body, sig
}

// BenchmarkCodecClickReply is the codec's share of a HELP click: verify, decrypt and parse the
// POST, then build and encrypt the ~200-byte Chinese text reply (no HTTP).
func BenchmarkCodecClickReply(b *testing.B) {
	const ts, nonce = "1700000000", "1372623149"
	c, body, sig := cbBenchSetup(b)
	reply := app.Reply{Text: cbBenchReply}
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
	c, body, sig := cbBenchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(sig, ts, nonce, body, app.ChannelApp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecSeal(b *testing.B) {
	const ts, nonce = "1700000000", "1372623149"
	c, body, sig := cbBenchSetup(b)
	in, err := c.Open(sig, ts, nonce, body, app.ChannelApp)
	if err != nil {
		b.Fatal(err)
	}
	reply := app.Reply{Text: cbBenchReply}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Seal(in, reply, ts, nonce); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseInbound(b *testing.B) {
	src := string(cbReadFixture(b, "click_help.xml"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cbParseInbound(src, app.ChannelApp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseInboundEncodingXML(b *testing.B) {
	src := cbReadFixture(b, "click_help.xml")
	b.ReportAllocs()
	for b.Loop() {
		var v cbStdInbound
		if err := xml.Unmarshal(src, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// Baseline: the same work done the common way, with silenceper's util and encoding/xml, for
// comparison with BenchmarkCodecClickReply.

type cbBaselineEnvelope struct {
	XMLName    xml.Name `xml:"xml"`
	ToUserName string   `xml:"ToUserName"`
	AgentID    string   `xml:"AgentID"`
	Encrypt    string   `xml:"Encrypt"`
}

type cbCDATA struct {
	Value string `xml:",cdata"`
}

type cbBaselineReply struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   cbCDATA  `xml:"ToUserName"`
	FromUserName cbCDATA  `xml:"FromUserName"`
	CreateTime   int64    `xml:"CreateTime"`
	MsgType      cbCDATA  `xml:"MsgType"`
	Content      cbCDATA  `xml:"Content"`
}

type cbBaselineReplyEnvelope struct {
	XMLName      xml.Name `xml:"xml"`
	Encrypt      cbCDATA  `xml:"Encrypt"`
	MsgSignature cbCDATA  `xml:"MsgSignature"`
	TimeStamp    string   `xml:"TimeStamp"`
	Nonce        cbCDATA  `xml:"Nonce"`
}

func BenchmarkBaselineSilenceperEncodingXML(b *testing.B) {
	const ts, nonce = "1700000000", "1372623149"
	_, body, sig := cbBenchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		var env cbBaselineEnvelope
		if err := xml.Unmarshal(body, &env); err != nil {
			b.Fatal(err)
		}
		if subtle.ConstantTimeCompare([]byte(util.Signature(cbTestToken, ts, nonce, env.Encrypt)), []byte(sig)) != 1 {
			b.Fatal("signature")
		}
		_, msg, err := util.DecryptMsg(cbTestCorp, env.Encrypt, cbTestKey)
		if err != nil {
			b.Fatal(err)
		}
		var in cbStdInbound
		if err := xml.Unmarshal(msg, &in); err != nil {
			b.Fatal(err)
		}
		plain, err := xml.Marshal(cbBaselineReply{ToUserName: cbCDATA{in.FromUserName}, FromUserName: cbCDATA{cbTestCorp},
			CreateTime: 1700000000, MsgType: cbCDATA{"text"}, Content: cbCDATA{cbBenchReply}})
		if err != nil {
			b.Fatal(err)
		}
		random := make([]byte, 16)
		if _, err := rand.Read(random); err != nil {
			b.Fatal(err)
		}
		enc, err := util.EncryptMsg(random, plain, cbTestCorp, cbTestKey)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := xml.Marshal(cbBaselineReplyEnvelope{Encrypt: cbCDATA{string(enc)},
			MsgSignature: cbCDATA{util.Signature(cbTestToken, ts, nonce, string(enc))}, TimeStamp: ts,
			Nonce: cbCDATA{nonce}}); err != nil {
			b.Fatal(err)
		}
	}
}

var cbBenchSink int

func BenchmarkSignature(b *testing.B) {
	enc := []byte(cbV2Encrypt)
	var buf []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var s [cbSigLen]byte
		s, buf = cbSignature(buf, cbTestToken, cbV2TS, strconv.Itoa(i&7), enc)
		cbBenchSink += int(s[0])
	}
}
