package callback

import (
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wecampus/wecampus/app"
)

// stdInbound is the encoding/xml reading of the fields parseInbound maps: the reference for
// the differential tests.
type stdInbound struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   string
	FromUserName string
	CreateTime   int64
	MsgType      string
	MsgId        string //nolint:revive // WeCom's element name
	AgentID      string
	Content      string
	Event        string
	EventKey     string
	ChangeType   string
	UserID       string
	NewUserID    string
	Name         string
	Mobile       string
	Status       int
}

func (s *stdInbound) toApp(channel string) app.Inbound {
	return app.Inbound{Channel: channel, ToUser: s.ToUserName, FromUser: s.FromUserName, CreateTime: s.CreateTime,
		MsgType: s.MsgType, MsgID: s.MsgId, AgentID: s.AgentID, Content: s.Content, Event: s.Event,
		EventKey: s.EventKey, ChangeType: s.ChangeType, UserID: s.UserID, NewUserID: s.NewUserID, Name: s.Name,
		Mobile: s.Mobile, Status: s.Status}
}

// differential parses src with both parsers. When ours accepts, encoding/xml must accept too and
// yield the same values (ours is a strict subset). It reports whether ours accepted.
func differential(t *testing.T, src string) bool {
	t.Helper()
	got, err := parseInbound(src, "x")
	if err != nil {
		return false
	}
	var std stdInbound
	if stdErr := xml.Unmarshal([]byte(src), &std); stdErr != nil {
		// The one deliberate leniency: characters XML 1.0 forbids inside text.
		if hasForbiddenChars(src) {
			return true
		}
		t.Fatalf("ours accepted, encoding/xml did not (%v):\n%q", stdErr, src)
	}
	if want := std.toApp("x"); *got != want {
		t.Fatalf("parsers disagree on\n%q\nours %+v\nstd  %+v", src, *got, want)
	}
	return true
}

// hasForbiddenChars reports raw invalid UTF-8 or characters outside XML 1.0's Char production,
// which encoding/xml rejects and ours lets through (as character references ours rejects them).
// U+FFFD itself counts too, which only makes the check skip a few more inputs.
func hasForbiddenChars(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !isXMLChar(r) {
			return true
		}
	}
	return false
}

// variants returns formatting variants of a WeCom plaintext that WeCom or a simulator might
// produce: newlines and indentation between elements, plain text with entities instead of
// CDATA, CRLF line ends, comments, a BOM, an XML declaration, attributes, split CDATA, and
// unknown nested elements.
func variants(src string) []string {
	v := []string{src}
	v = append(v, strings.ReplaceAll(src, "><", ">\n<"))
	v = append(v, strings.ReplaceAll(src, "><", ">\r\n\t<"))
	v = append(v, "\xef\xbb\xbf"+src)
	// A comment goes after the declaration, if any: nothing but a BOM and whitespace may precede it.
	decl, rest := "", src
	if strings.HasPrefix(src, "<?xml") {
		end := strings.Index(src, "?>") + len("?>")
		decl, rest = src[:end], src[end:]
	} else {
		v = append(v, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"+src)
	}
	v = append(v, decl+"<!-- c -->\n"+rest+"\n")
	v = append(v, strings.Replace(src, "<xml>", `<xml a="1" b='&amp;'>`, 1))
	v = append(v, strings.Replace(src, "</xml>", "<Extra><A><B>x</B></A><C/></Extra><!--x--></xml>", 1))
	// CDATA → escaped plain text.
	plain := src
	for {
		i := strings.Index(plain, "<![CDATA[")
		if i < 0 {
			break
		}
		j := strings.Index(plain[i:], "]]>")
		if j < 0 {
			break
		}
		inner := plain[i+9 : i+j]
		plain = plain[:i] + string(appendEscaped(nil, inner)) + plain[i+j+3:]
	}
	v = append(v, plain)
	// Each CDATA section split in two, with whitespace and a comment around it.
	v = append(v, strings.ReplaceAll(strings.ReplaceAll(src, "<![CDATA[", "<![CDATA[]]><![CDATA["), "]]>", "]]><!--x-->"))
	v = append(v, strings.ReplaceAll(src, "<![CDATA[", " <![CDATA["))
	return v
}

// TestScannerDifferential: on valid WeCom-shaped inputs (every fixture, in every variant, and
// EventXML of tricky values) both parsers accept and agree.
func TestScannerDifferential(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatal(files, err)
	}
	var inputs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range []app.Inbound{
		{MsgType: "text", Content: "a]]>b\r\nc\rd&<>\"'", FromUser: "张三", CreateTime: -1},
		{MsgType: "event", Event: "change_contact", ChangeType: "update_user", UserID: "a b", NewUserID: "\t", Status: 5},
	} {
		inputs = append(inputs, string(EventXML(&in)))
	}
	n := 0
	for _, src := range inputs {
		for _, v := range variants(src) {
			if !differential(t, v) {
				if _, err := parseInbound(v, "x"); !errors.Is(err, errNoMsgType) {
					t.Errorf("ours rejects a valid variant (%v):\n%q", err, v)
				}
				continue
			}
			n++
		}
	}
	t.Logf("%d documents compared", n)
}

// TestScannerEdgeCases compares the two parsers on hand-picked corners of XML; those ours rejects
// must also be listed as rejected.
func TestScannerEdgeCases(t *testing.T) {
	accept := []string{
		"<xml><MsgType>text</MsgType></xml>",
		"<xml ><MsgType >text</MsgType ></xml >",
		"<xml/>" + "", // no MsgType: rejected for that reason only, checked below
		"<xml><MsgType><![CDATA[]]></MsgType></xml>",
		"<xml><MsgType>a<![CDATA[b]]>c</MsgType></xml>",
		"<xml><MsgType><![CDATA[a\r\nb\rc\n\rd]]></MsgType></xml>",
		"<xml><MsgType>a\r\nb\rc\n\rd&#13;\n</MsgType></xml>",
		"<xml><MsgType>&#x41;&#65;&#x10FFFF;&#0000065;&#xe000;</MsgType></xml>",
		"<xml><MsgType>]]&gt;</MsgType></xml>",
		"<xml><MsgType>]] ></MsgType></xml>",
		"<xml><MsgType>a>b</MsgType></xml>",
		"<xml><MsgType><!----></MsgType></xml>",
		"<xml><MsgType><!---x-->t</MsgType></xml>",
		"<xml><MsgType>t</MsgType><CreateTime></CreateTime><Status/></xml>",
		"<xml><MsgType>t</MsgType><CreateTime>-5</CreateTime><Status>+7</Status></xml>",
		"<xml><MsgType>t</MsgType><CreateTime>\n 42\t</CreateTime></xml>",
		"<xml><MsgType>t</MsgType><Unknown a='x&lt;'><x><y/></x>&amp;<![CDATA[<z>]]></Unknown></xml>",
		"<xml>\n\t<MsgType>t</MsgType>\n</xml>\n\n",
		"<xml><MsgType x.y-z_w=\"1\">t</MsgType></xml>",
		"<xml><msgtype>x</msgtype><MsgType>t</MsgType></xml>",
	}
	for _, src := range accept {
		if !differential(t, src) {
			if _, err := parseInbound(src, ""); !errors.Is(err, errNoMsgType) {
				t.Errorf("rejected %q: %v", src, err)
			}
		}
	}
}

// FuzzParseInbound: the scanner never panics, and whenever it accepts an input encoding/xml
// accepts it too with the same values.
func FuzzParseInbound(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, v := range variants(string(b)) {
			f.Add(v)
		}
	}
	f.Add("<xml><MsgType>&#x41;</MsgType><Content>a]]>b</Content></xml>")
	f.Add("\xef\xbb\xbf <?xml version='1.0' encoding=\"utf-8\" standalone='yes' ?>\n<xml><MsgType>t</MsgType><Encrypt>e</Encrypt></xml>")
	f.Add(`<?xml version="1.0" encoding="GBK"?><xml><MsgType>t</MsgType></xml>`)
	f.Add(`<?xml-stylesheet href="x"?><xml><MsgType>t</MsgType></xml>`)
	f.Add(`<?xml version="1.0"<xml><MsgType>t</MsgType></xml>`)
	f.Fuzz(func(t *testing.T, src string) {
		differential(t, src)
		// The []byte instantiation must agree with the string one.
		env1, err1 := parseEnvelope(src)
		env2, err2 := parseEnvelope([]byte(src))
		if (err1 == nil) != (err2 == nil) || err1 == nil && (env1.encrypt != string(env2.encrypt) ||
			env1.agentID != string(env2.agentID) || env1.nonce != string(env2.nonce)) {
			t.Fatalf("string/[]byte scanners disagree on %q: %v / %v", src, err1, err2)
		}
	})
}

// FuzzEventXML: whatever the field values, EventXML produces XML that parses back to them, with
// only the characters XML cannot carry replaced.
func FuzzEventXML(f *testing.F) {
	f.Add("2021123456", "text", "帮助 ]]> <&>", "click", "HELP", "1000002", "update_user", "u", "n", "13800000000", int64(1700000000), 1)
	f.Add("\r\n", "\x00", "]]]]>", "", "", "", "", "", "", "", int64(-1), -5)
	f.Fuzz(func(t *testing.T, from, msgType, content, event, eventKey, agent, change, user, name, mobile string, ct int64, status int) {
		in := app.Inbound{Channel: "x", ToUser: "ww", FromUser: from, CreateTime: ct, MsgType: msgType, Content: content,
			Event: event, EventKey: eventKey, AgentID: agent, ChangeType: change, UserID: user, Name: name,
			Mobile: mobile, Status: status}
		doc := EventXML(&in)
		got, err := parseInbound(string(doc), "x")
		if msgType == "" {
			if !errors.Is(err, errNoMsgType) {
				t.Fatalf("%q: %v", doc, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		want := in
		for _, p := range []*string{&want.FromUser, &want.MsgType, &want.Content, &want.Event, &want.EventKey,
			&want.AgentID, &want.ChangeType, &want.UserID, &want.Name, &want.Mobile} {
			*p = sanitize(*p)
		}
		if *got != want {
			t.Fatalf("%q\ngot  %+v\nwant %+v", doc, *got, want)
		}
		differential(t, string(doc))
	})
}

// sanitize is the reference for the replacement EventXML and Seal apply.
func sanitize(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				b.WriteRune('\uFFFD')
				continue
			}
		}
		if !isXMLChar(r) {
			r = '\uFFFD'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestAppendCDATA pins the writer's output on the corners of its fast paths: 3-byte sequences at
// the end of the string, truncated or broken sequences, the excluded lead bytes E0/ED/EF, and
// every kind of replacement.
func TestAppendCDATA(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "<![CDATA[]]>"},
		{"帮助", "<![CDATA[帮助]]>"},
		{"a帮", "<![CDATA[a帮]]>"},
		{"\xe5\xb8", "<![CDATA[\uFFFD\uFFFD]]>"},
		{"\xe5\xb8a", "<![CDATA[\uFFFD\uFFFDa]]>"},
		{"\xe5a\xb8", "<![CDATA[\uFFFDa\uFFFD]]>"},
		{"\xed\xa0\x80", "<![CDATA[\uFFFD\uFFFD\uFFFD]]>"}, // a surrogate
		{"\xe0\x80\xaf", "<![CDATA[\uFFFD\uFFFD\uFFFD]]>"}, // an overlong '/'
		{"\xe0\xa4\x85\xed\x9f\xbf\uFFFD", "<![CDATA[\u0905\ud7ff\uFFFD]]>"},
		{"\uFFFE\uFFFF\uFF0C", "<![CDATA[\uFFFD\uFFFD，]]>"},
		{"𝄞", "<![CDATA[𝄞]]>"},
		{"a]]>b", "<![CDATA[a]]]]><![CDATA[>b]]>"},
		{"]>]]", "<![CDATA[]>]]]]>"},
		{"a\rb\r\n", "<![CDATA[a]]>&#13;<![CDATA[b]]>&#13;<![CDATA[\n]]>"},
		{"\t\x00\x1f\x7f", "<![CDATA[\t\uFFFD\uFFFD\x7f]]>"},
	}
	for _, tt := range tests {
		if got := string(appendCDATA(nil, tt.in)); got != tt.want {
			t.Errorf("appendCDATA(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
