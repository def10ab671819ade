package app

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestNormalizeMobile(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"13800000000", "13800000000", true},
		{" 138 0000 0000 ", "13800000000", true},
		{"+86 138-0000-0000", "13800000000", true},
		{"+8613800000000", "13800000000", true},
		{"008613800000000", "13800000000", true},
		{"１３８００００００００", "13800000000", true},
		{"1380000000", "", false},
		{"138000000000", "", false},
		{"23800000000", "", false},
		{"12800000000", "", false},
		{"1380000000a", "", false},
		{"", "", false},
		{"+", "", false},
		{"138+00000000", "", false},
		{"<script>", "", false},
	} {
		got, ok := NormalizeMobile(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeMobile(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMask(t *testing.T) {
	if got := MaskMobile("13800001234"); got != "138****1234" {
		t.Errorf("MaskMobile = %q", got)
	}
	if got := MaskMobile("123"); got != "****" {
		t.Errorf("MaskMobile short = %q", got)
	}
	if got := MaskName("张三丰"); got != "张**" {
		t.Errorf("MaskName = %q", got)
	}
	if got := MaskName("李"); got != "李*" {
		t.Errorf("MaskName single = %q", got)
	}
	if got := MaskNumber("2021123456"); got != "20******56" {
		t.Errorf("MaskNumber = %q", got)
	}
}

func TestIdentityPolicy(t *testing.T) {
	p, err := NewIdentityPolicy("{{.Number}}", []IdentityRuleConfig{
		{Type: "student", Number: "^[0-9]{8,12}$", Department: 2, Label: "学生"},
		{Type: "staff", Department: 3, Label: "教职工"},
	})
	if err != nil {
		t.Fatal(err)
	}
	rule, uid, err := p.Match(CASIdentity{Number: "2021123456", Type: "student"})
	if err != nil || rule.Department != 2 || uid != "2021123456" || rule.Label != "学生" {
		t.Fatalf("student: %v %v %v", rule, uid, err)
	}
	if _, _, err := p.Match(CASIdentity{Number: "abc", Type: "student"}); ErrorCode(err) != EFORBIDDEN {
		t.Fatalf("student with a bad number: %v", err)
	}
	// A refusal names the account (masked) and its type in Chinese, never the raw CAS type.
	_, _, err = p.Match(CASIdentity{Number: "2010000001", Type: "alumni"})
	if msg := ErrorMessage(err); ErrorCode(err) != EFORBIDDEN || !strings.Contains(msg, "20******01") ||
		!strings.Contains(msg, "“校友”") || strings.Contains(msg, "alumni") || strings.Contains(msg, "2010000001") {
		t.Fatalf("alumni: %v", err)
	}
	if err := p.SetTypeLabels(map[string]string{"Alumni": "老校友", "visiting": "访问学者"}); err != nil {
		t.Fatal(err)
	}
	_, _, err = p.Match(CASIdentity{Number: "2010000001", Type: "ALUMNI"})
	if !strings.Contains(ErrorMessage(err), "“老校友”") {
		t.Fatalf("configured label: %v", err)
	}
	for typ, want := range map[string]string{"visiting": "访问学者", "student": "学生", "retiree": "离退休人员", "x9": "x9", "": "未知"} {
		if got := p.TypeLabel(typ); got != want {
			t.Errorf("TypeLabel(%q) = %q, want %q", typ, got, want)
		}
	}
	if err := p.SetTypeLabels(map[string]string{"alumni": ""}); err == nil || !strings.HasPrefix(err.Error(), "identity.type_labels.alumni") {
		t.Errorf("empty label: %v", err)
	}
	if _, uid, _ := p.Match(CASIdentity{Number: "T001", Type: "staff"}); uid != "T001" {
		t.Fatalf("staff userid %q", uid)
	}

	p2, err := NewIdentityPolicy("{{.Type}}_{{.Number}}", []IdentityRuleConfig{{Type: "staff", Department: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if rule, uid, _ := p2.Match(CASIdentity{Number: "T001", Type: "staff"}); uid != "staff_T001" || rule.Label != "教职工" {
		t.Fatalf("templated userid %q, label of a rule without one %q", uid, rule.Label)
	}
	// The type is admitted, the number is not: the refusal says so without blaming the type.
	if _, _, err := p.Match(CASIdentity{Number: "abc", Type: "student"}); !strings.Contains(ErrorMessage(err), "a**（学生）") {
		t.Errorf("student with a bad number: %v", err)
	}

	for name, tc := range map[string]struct {
		tpl   string
		rules []IdentityRuleConfig
		key   string
	}{
		"bad regex":     {"", []IdentityRuleConfig{{Type: "a", Number: "[", Department: 1}}, "identity.rules[0].number"},
		"bad template":  {"{{.Number", []IdentityRuleConfig{{Type: "a", Department: 1}}, "identity.userid"},
		"unknown field": {"{{.Nope}}", []IdentityRuleConfig{{Type: "a", Department: 1}}, "identity.userid"},
		"bad userid":    {"中文{{.Number}}", []IdentityRuleConfig{{Type: "a", Department: 1}}, "identity.userid"},
		"no rules":      {"", nil, "identity.rules"},
		"no type":       {"", []IdentityRuleConfig{{Department: 1}}, "identity.rules[0].type"},
		"no department": {"", []IdentityRuleConfig{{Type: "a"}}, "identity.rules[0].department"},
	} {
		_, err := NewIdentityPolicy(tc.tpl, tc.rules)
		if err == nil || !strings.HasPrefix(err.Error(), tc.key) {
			t.Errorf("%s: err = %v, want prefix %q", name, err, tc.key)
		}
	}
}

func TestBuildMenu(t *testing.T) {
	m, err := BuildMenu("https://x.edu.cn/", DefaultMenu())
	if err != nil {
		t.Fatal(err)
	}
	if m[0].URL != "https://x.edu.cn/bind" || m[2].SubButton[1].URL != "https://x.edu.cn/unbind" {
		t.Fatalf("urls not resolved: %+v", m)
	}
	if DefaultMenu()[0].URL != "/bind" {
		t.Fatal("BuildMenu modified its input")
	}
	view := MenuButton{Type: "view", Name: "a", URL: "/a"}
	six := []MenuButton{view, view, view, view, view, view}
	for name, tc := range map[string]struct {
		menu []MenuButton
		want string
	}{
		"none":          {nil, "1 to 3"},
		"four":          {[]MenuButton{view, view, view, view}, "1 to 3"},
		"long name":     {[]MenuButton{{Type: "view", Name: "一二三四五六", URL: "/a"}}, "menu[0].name"},
		"six subs":      {[]MenuButton{{Name: "我的", SubButton: six}}, "menu[0].sub_button"},
		"no key":        {[]MenuButton{{Type: "click", Name: "帮助"}}, "menu[0].key"},
		"bad type":      {[]MenuButton{{Type: "nope", Name: "x", Key: "k"}}, "menu[0].type"},
		"relative url":  {[]MenuButton{{Type: "view", Name: "x", URL: "bind"}}, "menu[0].url"},
		"three levels":  {[]MenuButton{{Name: "a", SubButton: []MenuButton{{Name: "b", SubButton: []MenuButton{view}}}}}, "two levels"},
		"long sub name": {[]MenuButton{{Name: "a", SubButton: []MenuButton{{Type: "view", Name: strings.Repeat("长", 14), URL: "/a"}}}}, "menu[0].sub_button[0].name"},
	} {
		if _, err := BuildMenu("https://x.edu.cn", tc.menu); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

func TestDedupKey(t *testing.T) {
	msg := &Inbound{Channel: ChannelApp, MsgType: "text", MsgID: "42", FromUser: "u", CreateTime: 1}
	msg2 := *msg
	msg2.CreateTime = 2 // a retry carries the same MsgId
	if msg.DedupKey() != msg2.DedupKey() {
		t.Error("messages with one MsgId must share a key")
	}
	ev := &Inbound{Channel: ChannelContacts, MsgType: "event", Event: "change_contact", ChangeType: "update_user", UserID: "a", FromUser: "sys", CreateTime: 5}
	ev2 := *ev
	ev2.UserID = "b"
	if ev.DedupKey() == ev2.DedupKey() {
		t.Error("change_contact for two users in the same second must not collide")
	}
	ev3 := *ev
	ev3.ChangeType = "delete_user"
	if ev.DedupKey() == ev3.DedupKey() {
		t.Error("different change types must not collide")
	}
	ev4, ev5 := *ev, *ev
	ev4.Status, ev5.NewUserID = 1, "c"
	if ev.DedupKey() == ev4.DedupKey() || ev4.DedupKey() == ev5.DedupKey() {
		t.Error("an activation and a userid change of one member in the same second must not collide")
	}
	// A retry is decoded afresh from the same XML: a value built independently with the same
	// fields must give the same key.
	retry := &Inbound{Channel: ChannelContacts, MsgType: "event", Event: "change_contact", ChangeType: "update_user",
		UserID: "a", FromUser: "sys", CreateTime: 5, NewUserID: "c"}
	if retry.DedupKey() != ev5.DedupKey() {
		t.Errorf("a retry must share the key: %q != %q", retry.DedupKey(), ev5.DedupKey())
	}
}

func TestErrors(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", Errorf(ECONFLICT, "已绑定"))
	if ErrorCode(err) != ECONFLICT || ErrorMessage(err) != "已绑定" {
		t.Fatalf("%v %v", ErrorCode(err), ErrorMessage(err))
	}
	plain := errors.New("sql: secret detail")
	if ErrorCode(plain) != EINTERNAL || strings.Contains(ErrorMessage(plain), "secret") {
		t.Fatal("internal errors must not leak")
	}
	we := fmt.Errorf("x: %w", &WeComError{Op: "user/create", Code: 60104})
	if WeComCode(we) != 60104 || WeComTemporary(we) {
		t.Fatal("WeComCode")
	}
	if !WeComTemporary(&WeComError{Op: "x", Unknown: true}) || !WeComTemporary(&WeComError{Op: "x", Code: -1}) {
		t.Fatal("WeComTemporary")
	}
}

func TestOutboxBackoff(t *testing.T) {
	if outboxBackoff(1) != 10e9 || outboxBackoff(2) != 20e9 || outboxBackoff(100) != 30*60e9 {
		t.Fatal(outboxBackoff(1), outboxBackoff(2), outboxBackoff(100))
	}
}
