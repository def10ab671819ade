package callback

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wecampus/wecampus/app"
)

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestParseInboundFixtures parses WeCom-shaped plaintexts (testdata/*.xml, copied from the docs'
// samples and the official vector V2) into app.Inbound.
func TestParseInboundFixtures(t *testing.T) {
	const corp = "wwcampus00000001"
	tests := []struct {
		file string
		want app.Inbound
	}{
		{"v2_text.xml", app.Inbound{ToUser: "wx5823bf96d3bd56c7", FromUser: "mycreate", CreateTime: 1409659813,
			MsgType: "text", Content: "hello", MsgID: "4561255354251345929", AgentID: "218"}},
		{"click_help.xml", app.Inbound{ToUser: corp, FromUser: "2021123456", CreateTime: 1700000000,
			MsgType: "event", Event: "click", EventKey: "HELP", AgentID: "1000002"}},
		// As a proxy may forward it: an XML declaration and line breaks around the root.
		{"click_help_declaration.xml", app.Inbound{ToUser: corp, FromUser: "2021123456", CreateTime: 1700000010,
			MsgType: "event", Event: "click", EventKey: "HELP", AgentID: "1000002"}},
		{"view.xml", app.Inbound{ToUser: corp, FromUser: "2021123456", CreateTime: 1700000001,
			MsgType: "event", Event: "view", EventKey: "https://wecampus.example.edu.cn/unbind?a=1&b=2", AgentID: "1000002"}},
		{"enter_agent.xml", app.Inbound{ToUser: corp, FromUser: "2021123456", CreateTime: 1700000002,
			MsgType: "event", Event: "enter_agent", AgentID: "1000002"}},
		{"subscribe.xml", app.Inbound{ToUser: corp, FromUser: "2021123456", CreateTime: 1700000003,
			MsgType: "event", Event: "subscribe", AgentID: "1000002"}},
		{"unsubscribe.xml", app.Inbound{ToUser: corp, FromUser: "2021123456", CreateTime: 1700000004,
			MsgType: "event", Event: "unsubscribe", AgentID: "1000002"}},
		// The nested <ExtAttr><Item><Name> must not be taken for the member's Name.
		{"change_contact_create_user.xml", app.Inbound{ToUser: corp, FromUser: "sys", CreateTime: 1403610513,
			MsgType: "event", Event: "change_contact", ChangeType: "create_user", UserID: "zhangsan",
			Name: "张三", Mobile: "13800000000", Status: 1}},
		{"change_contact_update_user.xml", app.Inbound{ToUser: corp, FromUser: "sys", CreateTime: 1700000005,
			MsgType: "event", Event: "change_contact", ChangeType: "update_user", UserID: "old_id",
			NewUserID: "2021123456", Status: 1}},
		{"change_contact_delete_user.xml", app.Inbound{ToUser: corp, FromUser: "sys", CreateTime: 1700000006,
			MsgType: "event", Event: "change_contact", ChangeType: "delete_user", UserID: "2021123456"}},
		{"location.xml", app.Inbound{ToUser: corp, FromUser: "2021123456", CreateTime: 1700000007,
			MsgType: "event", Event: "LOCATION", AgentID: "1000002"}},
		{"image.xml", app.Inbound{ToUser: corp, FromUser: "2021123456", CreateTime: 1700000008,
			MsgType: "image", MsgID: "1234567890123456", AgentID: "1000002"}},
		{"batch_job_result.xml", app.Inbound{ToUser: corp, FromUser: "sys", CreateTime: 1425284517,
			MsgType: "event", Event: "batch_job_result"}},
		{"text_plain_entities.xml", app.Inbound{ToUser: corp, FromUser: "li小ming", CreateTime: 1700000009,
			MsgType: "text", Content: `<绑定> & "解绑" 'x' ` + "\u7d30" + "A ]]> end", MsgID: "4561255354251345930"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in, err := parseInbound(string(readFixture(t, tt.file)), app.ChannelContacts)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Channel = app.ChannelContacts
			if *in != tt.want {
				t.Errorf("got  %+v\nwant %+v", *in, tt.want)
			}
		})
	}
}

func TestParseInboundRejects(t *testing.T) {
	long := strings.Repeat("x", maxField+1)
	tests := []struct {
		name, src string
		want      error
	}{
		{"Empty", "", errEOF},
		{"NotXML", "hello", errText},
		{"OtherRoot", "<root><MsgType>text</MsgType></root>", errRoot},
		{"Unclosed", "<xml><MsgType>text</MsgType>", errEOF},
		{"UnclosedField", "<xml><MsgType>text</xml>", errEndTag},
		{"Mismatched", "<xml><MsgType>text</Content></xml>", errEndTag},
		{"NoMsgType", "<xml><Content>hi</Content></xml>", errNoMsgType},
		{"DuplicateMsgType", "<xml><MsgType>event</MsgType><MsgType>text</MsgType></xml>", errDuplicate},
		{"DuplicateUserID", "<xml><MsgType>event</MsgType><UserID>a</UserID><UserID>b</UserID></xml>", errDuplicate},
		{"KnownFieldWithChildren", "<xml><MsgType>text</MsgType><Content><b>x</b></Content></xml>", errChildField},
		{"Oversize", "<xml><MsgType>text</MsgType><Content>" + long + "</Content></xml>", errTooLong},
		{"BadCreateTime", "<xml><MsgType>text</MsgType><CreateTime>soon</CreateTime></xml>", errNumber},
		{"BadStatus", "<xml><MsgType>event</MsgType><Status>1.5</Status></xml>", errNumber},
		{"OverflowCreateTime", "<xml><MsgType>text</MsgType><CreateTime>99999999999999999999</CreateTime></xml>", errNumber},
		{"BadEntity", "<xml><MsgType>te&nbsp;xt</MsgType></xml>", errEntity},
		{"AmpNoSemicolon", "<xml><MsgType>a&amp b</MsgType></xml>", errEntity},
		{"NulCharRef", "<xml><MsgType>&#0;</MsgType></xml>", errEntity},
		{"SurrogateCharRef", "<xml><MsgType>&#xD800;</MsgType></xml>", errEntity},
		{"HugeCharRef", "<xml><MsgType>&#99999999999999999999;</MsgType></xml>", errEntity},
		{"CDATAEndInText", "<xml><MsgType>a]]>b</MsgType></xml>", errCDATAEnd},
		{"UnterminatedCDATA", "<xml><MsgType><![CDATA[text</MsgType></xml>", errEOF},
		{"Doctype", `<!DOCTYPE xml [<!ENTITY a "b">]><xml><MsgType>&a;</MsgType></xml>`, errMarkup},
		{"PIInside", `<xml><?php echo 1 ?><MsgType>text</MsgType></xml>`, errMarkup},
		{"PIBeforeRoot", `<?php echo 1 ?><xml><MsgType>text</MsgType></xml>`, errMarkup},
		{"PIEmpty", `<??><xml><MsgType>text</MsgType></xml>`, errMarkup},
		{"PIBare", `<?`, errMarkup},
		{"PIXMLStylesheet", `<?xml-stylesheet href="a.xsl"?><xml><MsgType>text</MsgType></xml>`, errMarkup},
		{"PIXMLPrefix", `<?xmlfoo version="1.0"?><xml><MsgType>text</MsgType></xml>`, errMarkup},
		{"DeclarationTwice", `<?xml version="1.0"?><?xml version="1.0"?><xml><MsgType>text</MsgType></xml>`, errMarkup},
		{"DeclarationAfterComment", `<!-- c --><?xml version="1.0"?><xml><MsgType>text</MsgType></xml>`, errMarkup},
		{"DeclarationInsideRoot", `<xml><?xml version="1.0"?><MsgType>text</MsgType></xml>`, errMarkup},
		{"DeclarationAfterRoot", `<xml><MsgType>text</MsgType></xml><?xml version="1.0"?>`, errTrailing},
		{"DeclarationOnly", `<?xml version="1.0" encoding="UTF-8"?>`, errEOF},
		{"DeclarationEmpty", `<?xml?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationNoVersion", `<?xml encoding="UTF-8"?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationVersion11", `<?xml version="1.1"?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationVersionUnquoted", `<?xml version=1.0?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationVersionNoEquals", `<?xml version "1.0"?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationQuotesMismatch", `<?xml version="1.0'?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationGBK", `<?xml version="1.0" encoding="GBK"?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationUTF16", `<?xml version="1.0" encoding="UTF-16"?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationStandaloneMaybe", `<?xml version="1.0" standalone="maybe"?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationOutOfOrder", `<?xml version="1.0" standalone="yes" encoding="UTF-8"?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationUnknownAttr", `<?xml version="1.0" foo="bar"?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationNoSpaceBetween", `<?xml version="1.0"encoding="UTF-8"?><xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationUnterminated", `<?xml version="1.0"<xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationHalfEnd", `<?xml version="1.0"?<xml><MsgType>text</MsgType></xml>`, errDecl},
		{"DeclarationTruncated", `<?xml version="1.`, errDecl},
		{"TextBetween", "<xml>junk<MsgType>text</MsgType></xml>", errText},
		{"Trailing", "<xml><MsgType>text</MsgType></xml><xml/>", errTrailing},
		{"Namespace", "<xml><a:MsgType>text</a:MsgType></xml>", errTag},
		{"BadComment", "<xml><!-- a -- b --><MsgType>text</MsgType></xml>", errComment},
		{"UnquotedAttr", "<xml><MsgType a=b>text</MsgType></xml>", errTag},
		{"AttrNoSpace", `<xml><MsgType a="1"b="2">text</MsgType></xml>`, errTag},
		{"LtInAttr", `<xml><MsgType a="<">text</MsgType></xml>`, errTag},
		{"TooDeep", "<xml><MsgType>text</MsgType>" + strings.Repeat("<a>", maxDepth+1) + strings.Repeat("</a>", maxDepth+1) + "</xml>", errDepth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := parseInbound(tt.src, app.ChannelApp)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %+v, %v; want %v", in, err, tt.want)
			}
		})
	}
}

// TestParseInboundDeclaration: a leading XML declaration, in any form XML 1.0 allows for version
// 1.0 and UTF-8, with a BOM and whitespace around it, is skipped; the values are those of the same
// document without it, in both the string and the []byte scanner.
func TestParseInboundDeclaration(t *testing.T) {
	const doc = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><MsgType>event</MsgType><Event>click</Event>" +
		"<EventKey>HELP</EventKey><Encrypt>abc</Encrypt></xml>"
	want, err := parseInbound(doc, app.ChannelApp)
	if err != nil {
		t.Fatal(err)
	}
	for _, decl := range []string{
		`<?xml version="1.0" encoding="UTF-8"?>`,
		`<?xml version="1.0"?>`,
		`<?xml version='1.0' encoding='utf-8'?>`,
		`<?xml version="1.0" encoding="Utf-8" standalone="yes"?>`,
		`<?xml version="1.0" standalone='no' ?>`,
		"<?xml\tversion = \"1.0\"\r\n encoding= 'UTF-8'\n?>",
	} {
		for _, src := range []string{
			decl + doc,
			decl + "\n" + doc + "\n",
			"\xef\xbb\xbf" + decl + "\r\n" + doc,
			"  \n" + decl + "\n<!-- proxy -->\n" + doc,
			"\xef\xbb\xbf\n" + decl + doc,
		} {
			got, err := parseInbound(src, app.ChannelApp)
			if err != nil {
				t.Errorf("%q: %v", src, err)
				continue
			}
			if *got != *want {
				t.Errorf("%q:\ngot  %+v\nwant %+v", src, *got, *want)
			}
			differential(t, src)
			if s, b := mustEnvelope(t, src), mustEnvelope(t, []byte(src)); s.encrypt != "abc" || string(b.encrypt) != "abc" {
				t.Errorf("%q: envelope Encrypt %q / %q", src, s.encrypt, b.encrypt)
			}
		}
	}
}

func mustEnvelope[T text](t *testing.T, src T) envelope[T] {
	t.Helper()
	env, err := parseEnvelope(src)
	if err != nil {
		t.Fatalf("%q: %v", src, err)
	}
	return env
}

func TestParseInboundDepthLimitAllowsMax(t *testing.T) {
	src := "<xml><MsgType>text</MsgType>" + strings.Repeat("<a>", maxDepth) + strings.Repeat("</a>", maxDepth) + "</xml>"
	if _, err := parseInbound(src, app.ChannelApp); err != nil {
		t.Fatal(err)
	}
}

// TestEventXMLRoundTrip: parsing EventXML(in) gives in back, including characters that need care
// in XML (a CDATA terminator, markup, carriage returns, Chinese).
func TestEventXMLRoundTrip(t *testing.T) {
	tests := []app.Inbound{
		{ToUser: "ww1", FromUser: "2021123456", CreateTime: 1700000000, MsgType: "text",
			Content: "帮助", MsgID: "4561255354251345929", AgentID: "1000002"},
		{ToUser: "ww1", FromUser: "u", CreateTime: 1, MsgType: "text",
			Content: "a]]>b]]]>c<d>&e;\r\nf\rg\n\t\"'h]]", MsgID: "1"},
		{ToUser: "ww1", FromUser: "u", CreateTime: 2, MsgType: "event", Event: "click", EventKey: "HELP", AgentID: "1000002"},
		{ToUser: "ww1", FromUser: "u", CreateTime: 3, MsgType: "event", Event: "view", EventKey: "https://x/?a=1&b=<2>"},
		{ToUser: "ww1", FromUser: "u", CreateTime: 4, MsgType: "event", Event: "enter_agent"},
		{ToUser: "ww1", FromUser: "u", CreateTime: 5, MsgType: "event", Event: "subscribe"},
		{ToUser: "ww1", FromUser: "u", CreateTime: 6, MsgType: "event", Event: "unsubscribe"},
		{ToUser: "ww1", FromUser: "sys", CreateTime: 7, MsgType: "event", Event: "change_contact",
			ChangeType: "create_user", UserID: "zhangsan", Name: "张三", Mobile: "13800000000", Status: 4},
		{ToUser: "ww1", FromUser: "sys", CreateTime: 8, MsgType: "event", Event: "change_contact",
			ChangeType: "update_user", UserID: "old", NewUserID: "new", Status: 1},
		{ToUser: "ww1", FromUser: "sys", CreateTime: -9, MsgType: "event", Event: "change_contact",
			ChangeType: "delete_user", UserID: "gone"},
		{MsgType: "x"},
	}
	for _, want := range tests {
		want.Channel = app.ChannelApp
		x := EventXML(&want)
		got, err := parseInbound(string(x), app.ChannelApp)
		if err != nil {
			t.Fatalf("%s: %v", x, err)
		}
		if *got != want {
			t.Errorf("%s\ngot  %+v\nwant %+v", x, *got, want)
		}
	}
	if EventXML(nil) != nil {
		t.Error("EventXML(nil) is not nil")
	}
}

func TestEventXMLShape(t *testing.T) {
	in := &app.Inbound{ToUser: "ww1", FromUser: "2021123456", CreateTime: 1700000000, MsgType: "event",
		Event: "click", EventKey: "HELP", AgentID: "1000002"}
	want := "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[2021123456]]></FromUserName>" +
		"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[click]]></Event>" +
		"<EventKey><![CDATA[HELP]]></EventKey><AgentID>1000002</AgentID></xml>"
	if got := string(EventXML(in)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestEventXMLSanitizes: characters XML 1.0 cannot carry become U+FFFD, so the output always parses.
func TestEventXMLSanitizes(t *testing.T) {
	in := &app.Inbound{MsgType: "text", Content: "a\x00b\x1fc\xffd\uFFFEe"}
	got, err := parseInbound(string(EventXML(in)), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "a\uFFFDb\uFFFDc\uFFFDd\uFFFDe"; got.Content != want {
		t.Errorf("got %q, want %q", got.Content, want)
	}
}
