package app

import (
	"strings"
	"testing"
)

func TestAppMenuDefaultCarriesHelpKey(t *testing.T) {
	menu, err := AppMenu("https://x.edu.cn", "HELP2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := menu[2].SubButton[2]; got.Type != "click" || got.Key != "HELP2" {
		t.Errorf("help button = %+v, want a click with key HELP2", got)
	}
	if menu[0].URL != "https://x.edu.cn/bind" {
		t.Errorf("first button URL = %q", menu[0].URL)
	}
	if DefaultMenu()[2].SubButton[2].Key != "HELP" {
		t.Error("AppMenu changed DefaultMenu")
	}
}

func TestAppMenuClickMustUseHelpKey(t *testing.T) {
	buttons := []MenuButton{
		{Type: "view", Name: "a", URL: "/a"},
		{Name: "我的", SubButton: []MenuButton{{Type: "click", Name: "状态", Key: "MY_STATUS"}}},
	}
	_, err := AppMenu("https://x.edu.cn", "HELP", buttons)
	if err == nil || !strings.HasPrefix(err.Error(), `menu[1].sub_button[0].key: "MY_STATUS" is not answered`) {
		t.Errorf("err = %v", err)
	}
	// Without a help key (reported elsewhere) only WeCom's limits are checked.
	if _, err := AppMenu("https://x.edu.cn", "", buttons); err != nil {
		t.Errorf("empty help key: %v", err)
	}
	buttons[1].SubButton[0].Key = "HELP"
	if _, err := AppMenu("https://x.edu.cn", "HELP", buttons); err != nil {
		t.Errorf("click with the help key: %v", err)
	}
}
