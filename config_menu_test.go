package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/wecampus/wecampus/app"
)

func view(name, url string) map[string]any {
	return map[string]any{"type": "view", "name": name, "url": url}
}

func click(name, key string) map[string]any {
	return map[string]any{"type": "click", "name": name, "key": key}
}

func parent(name string, subs ...any) map[string]any {
	return map[string]any{"name": name, "sub_button": subs}
}

// TestMenuDefault: without menu: the default menu is used, its links resolved against
// server.base_url and its help button carrying wecom.help_key.
func TestMenuDefault(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "wecom.help_key", "HELP2")
	cfg, err := LoadConfig(writeConfig(t, tree))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	menu, err := cfg.AppMenu()
	if err != nil {
		t.Fatal(err)
	}
	const base = "https://wecampus.example.edu.cn"
	want := []app.MenuButton{
		{Type: "view", Name: "注册绑定", URL: base + "/bind"},
		{Type: "view", Name: "身份验证", URL: base + "/verify"},
		{Name: "我的", SubButton: []app.MenuButton{
			{Type: "view", Name: "绑定信息", URL: base + "/me"},
			{Type: "view", Name: "解除绑定", URL: base + "/unbind"},
			{Type: "click", Name: "使用帮助", Key: "HELP2"},
		}},
	}
	if !reflect.DeepEqual(menu, want) {
		t.Errorf("menu = %+v\nwant %+v", menu, want)
	}
	if app.DefaultMenu()[2].SubButton[2].Key != "HELP" {
		t.Error("AppMenu changed app.DefaultMenu")
	}
}

// TestMenuFromConfig: a configured menu replaces the default; absolute URLs stay as written.
func TestMenuFromConfig(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "menu", []any{
		view("绑定", "/bind"),
		parent("更多", view("学校主页", "https://www.example.edu.cn/"), click("帮助", "HELP")),
	})
	cfg, err := LoadConfig(writeConfig(t, tree))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	menu, err := cfg.AppMenu()
	if err != nil {
		t.Fatal(err)
	}
	if len(menu) != 2 || menu[0].URL != "https://wecampus.example.edu.cn/bind" ||
		menu[1].SubButton[0].URL != "https://www.example.edu.cn/" || menu[1].SubButton[1].Key != "HELP" {
		t.Errorf("menu = %+v", menu)
	}
}

// TestMenuInvalid: WeCom's limits are checked when the config is loaded; each error names the
// button, on one line, and a bad menu stops every command.
func TestMenuInvalid(t *testing.T) {
	long16 := strings.Repeat("长", 6)  // 18 bytes
	long40 := strings.Repeat("长", 14) // 42 bytes
	five := []any{view("a", "/a"), view("b", "/b"), view("c", "/c"), view("d", "/d"), view("e", "/e")}
	tests := []struct {
		name string
		menu any
		want string
	}{
		{"FourButtons", []any{view("a", "/a"), view("b", "/b"), view("c", "/c"), view("d", "/d")}, "config: menu: WeCom allows 1 to 3 top-level buttons, got 4"},
		{"LongName", []any{view(long16, "/a")}, "config: menu[0].name: "},
		{"LongSubName", []any{view("a", "/a"), parent("我的", view("ok", "/ok"), view(long40, "/b"))}, "config: menu[1].sub_button[1].name: "},
		{"SixSubButtons", []any{parent("我的", append(five, view("f", "/f"))...)}, "config: menu[0].sub_button: WeCom allows at most 5 sub-buttons, got 6"},
		{"ThreeLevels", []any{parent("a", parent("b", view("c", "/c")))}, "config: menu[0].sub_button[0].sub_button: "},
		{"NoName", []any{map[string]any{"type": "view", "url": "/a"}}, "config: menu[0].name: required"},
		{"BadType", []any{map[string]any{"type": "link", "name": "a", "url": "/a"}}, "config: menu[0].type: "},
		{"ParentWithType", []any{map[string]any{"type": "view", "name": "a", "sub_button": []any{view("b", "/b")}}}, "config: menu[0].type: "},
		{"RelativeURLWithoutSlash", []any{view("a", "bind")}, "config: menu[0].url: "},
		{"LongURL", []any{view("a", "/"+strings.Repeat("x", 1024))}, "config: menu[0].url: at most 1024 bytes"},
		{"ClickWithoutKey", []any{map[string]any{"type": "click", "name": "帮助"}}, "config: menu[0].key: required"},
		{"LongKey", []any{map[string]any{"type": "scancode_push", "name": "扫码", "key": strings.Repeat("k", 129)}}, "config: menu[0].key: at most 128 bytes"},
		{"ClickOtherKey", []any{view("a", "/a"), parent("我的", click("状态", "MY_STATUS"))}, "config: menu[1].sub_button[0].key: \"MY_STATUS\" is not answered"},
		// An unknown field is reported with what its absence leaves wrong, all at once.
		{"UnknownField", []any{map[string]any{"type": "view", "name": "a", "link": "/a"}},
			"config: menu[0].link: unknown key\nconfig: menu[0].url: a view button needs"},
		{"NotAList", map[string]any{"button": []any{view("a", "/a")}},
			"config: menu[0].button: unknown key\nconfig: menu[0].name: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := baseConfig(t)
			setKey(t, tree, "menu", tt.menu)
			err := loadAndValidate(writeConfig(t, tree))
			if err == nil {
				t.Fatal("passed validation")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			want := strings.Count(tt.want, "\n") + 1
			if lines := strings.Split(err.Error(), "\n"); len(lines) != want {
				t.Errorf("%d lines, want %d:\n%s", len(lines), want, err)
			}
		})
	}

	// serve refuses to start with a bad menu, with one line naming it.
	tree := baseConfig(t)
	setKey(t, tree, "menu", []any{view(long16, "/a")})
	r := runCLI(t, "--config", writeConfig(t, tree), "serve")
	if r.code == 0 || !strings.Contains(r.stderr, "menu[0].name") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("serve with a bad menu: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestMenuBadBaseURLReportedOnce: a bad server.base_url is one problem, not also a menu problem.
func TestMenuBadBaseURLReportedOnce(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "server.base_url", "wecampus.example.edu.cn")
	err := loadAndValidate(writeConfig(t, tree))
	if err == nil || strings.Contains(err.Error(), "menu") || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("err = %v, want one line about server.base_url", err)
	}
}

// TestMenuFromEnv: WECAMPUS_MENU replaces the whole menu with JSON, like identity.rules.
func TestMenuFromEnv(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "menu", []any{view("文件里的", "/bind")})
	path := writeConfig(t, tree)
	t.Setenv("WECAMPUS_MENU", `[{"type":"view","name":"绑定","url":"/bind"},{"name":"我的","sub_button":[{"type":"click","name":"帮助","key":"HELP"}]}]`)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	menu, err := cfg.AppMenu()
	if err != nil {
		t.Fatal(err)
	}
	if len(menu) != 2 || menu[0].Name != "绑定" || len(menu[1].SubButton) != 1 || menu[1].SubButton[0].Key != "HELP" {
		t.Errorf("menu from env = %+v", menu)
	}
	t.Setenv("WECAMPUS_MENU", `[{"type":"view","name":"绑定","link":"/bind"}]`)
	if err := loadAndValidate(path); err == nil || !strings.Contains(err.Error(), "link") {
		t.Errorf("unknown field from env: err = %v", err)
	}
	t.Setenv("WECAMPUS_MENU", `not json`)
	if err := loadAndValidate(path); err == nil || !strings.Contains(err.Error(), "menu") {
		t.Errorf("bad JSON from env: err = %v", err)
	}
}
