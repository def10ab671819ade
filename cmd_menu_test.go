package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// TestMenuSyncAndShow: `menu sync` writes the configured menu with menu/create for the app's
// agentid; `menu show` prints what WeCom has, readable or as JSON.
func TestMenuSyncAndShow(t *testing.T) {
	sim := newSimulated(t)
	path := sim.path(t)
	agentID := wecomtest.DefaultAgentID

	r := runCLI(t, "--config", path, "menu", "show")
	if r.code != 0 || !strings.Contains(r.stdout, "no menu") {
		t.Fatalf("show before sync: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, "--config", path, "menu", "sync", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "dry run") || !strings.Contains(r.stdout, "1. 注册绑定  view  https://wecampus.example.edu.cn/bind") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := sim.wecom.CallCount("menu/create"); n != 0 || sim.wecom.Menu(agentID) != nil {
		t.Fatalf("dry run wrote the menu (%d calls)", n)
	}

	r = runCLI(t, "--config", path, "menu", "sync")
	if r.code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	const base = "https://wecampus.example.edu.cn"
	want := []app.MenuButton{
		{Type: "view", Name: "注册绑定", URL: base + "/bind"},
		{Type: "view", Name: "身份验证", URL: base + "/verify"},
		{Name: "我的", SubButton: []app.MenuButton{
			{Type: "view", Name: "绑定信息", URL: base + "/me"},
			{Type: "view", Name: "解除绑定", URL: base + "/unbind"},
			{Type: "click", Name: "使用帮助", Key: "HELP"},
		}},
	}
	if got := sim.wecom.Menu(agentID); !reflect.DeepEqual(got, want) {
		t.Fatalf("menu in WeCom:\n got %+v\nwant %+v", got, want)
	}
	for _, c := range sim.wecom.Calls() {
		if c.Endpoint == "menu/create" && (c.Query.Get("agentid") != "1000002" || c.Secret != wecomtest.SecretApp || c.ErrCode != 0) {
			t.Errorf("menu/create call: agentid %q, secret %q, errcode %d", c.Query.Get("agentid"), c.Secret, c.ErrCode)
		}
	}
	if !strings.HasPrefix(r.stdout, "ok   menu written to app 1000002 (3 buttons)") {
		t.Errorf("sync output:\n%s", r.stdout)
	}

	r = runCLI(t, "--config", path, "menu", "show")
	wantText := "1. 注册绑定  view  " + base + "/bind\n" +
		"2. 身份验证  view  " + base + "/verify\n" +
		"3. 我的\n" +
		"   3.1 绑定信息  view  " + base + "/me\n" +
		"   3.2 解除绑定  view  " + base + "/unbind\n" +
		"   3.3 使用帮助  click  HELP\n"
	if r.code != 0 || r.stdout != wantText {
		t.Fatalf("show: exit %d\n%s\nwant:\n%s%s", r.code, r.stdout, wantText, r.stderr)
	}

	r = runCLI(t, "--config", path, "menu", "show", "--json")
	var doc struct {
		Button []app.MenuButton `json:"button"`
	}
	if r.code != 0 {
		t.Fatalf("show --json: exit %d\n%s", r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || !reflect.DeepEqual(doc.Button, want) {
		t.Fatalf("show --json: %v\n%s", err, r.stdout)
	}
}

// TestMenuSyncConfigured: a menu: section is what gets written.
func TestMenuSyncConfigured(t *testing.T) {
	sim := newSimulated(t)
	setKey(t, sim.tree, "menu", []any{view("注册", "/bind"), view("主页", "https://www.example.edu.cn/")})
	if r := runCLI(t, "--config", sim.path(t), "menu", "sync"); r.code != 0 {
		t.Fatalf("sync: exit %d\n%s", r.code, r.stderr)
	}
	got := sim.wecom.Menu(wecomtest.DefaultAgentID)
	if len(got) != 2 || got[0].URL != "https://wecampus.example.edu.cn/bind" || got[1].URL != "https://www.example.edu.cn/" {
		t.Fatalf("menu in WeCom: %+v", got)
	}
}

// TestMenuSyncWeComRefuses: a WeCom refusal fails the command with the errcode and a hint; a bad
// menu never reaches WeCom.
func TestMenuSyncWeComRefuses(t *testing.T) {
	sim := newSimulated(t)
	sim.wecom.Inject("menu/create", 1, wecomtest.Fault{ErrCode: 40055})
	r := runCLI(t, "--config", sim.path(t), "menu", "sync")
	if r.code == 0 || !strings.Contains(r.stderr, "40055") || !strings.Contains(r.stderr, "trusted domain") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if sim.wecom.Menu(wecomtest.DefaultAgentID) != nil {
		t.Fatal("menu set although WeCom refused")
	}

	setKey(t, sim.tree, "menu", []any{view("a", "/a"), view("b", "/b"), view("c", "/c"), view("d", "/d")})
	calls := len(sim.wecom.Calls())
	r = runCLI(t, "--config", sim.path(t), "menu", "sync")
	if r.code == 0 || !strings.Contains(r.stderr, "config: menu: ") {
		t.Fatalf("bad menu: exit %d, stderr %q", r.code, r.stderr)
	}
	if len(sim.wecom.Calls()) != calls {
		t.Fatal("a bad menu reached WeCom")
	}
}

func TestMenuNeedsSubcommand(t *testing.T) {
	if r := runCLI(t, "menu"); r.code != exitUsage || !strings.Contains(r.stderr, "sync or show") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
