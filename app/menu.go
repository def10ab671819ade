package app

import (
	"context"
	"fmt"
	"strings"
)

// DefaultMenu is the app menu when config.yaml has no menu section. Relative URLs are resolved
// against server.base_url; /verify, /me and /unbind start WeCom OAuth themselves.
func DefaultMenu() []MenuButton {
	return []MenuButton{
		{Type: "view", Name: "注册绑定", URL: "/bind"},
		{Type: "view", Name: "身份验证", URL: "/verify"},
		{Name: "我的", SubButton: []MenuButton{
			{Type: "view", Name: "绑定信息", URL: "/me"},
			{Type: "view", Name: "解除绑定", URL: "/unbind"},
			{Type: "click", Name: "使用帮助", Key: "HELP"},
		}},
	}
}

var menuTypes = map[string]bool{"click": true, "view": true, "scancode_push": true, "scancode_waitmsg": true,
	"pic_sysphoto": true, "pic_photo_or_album": true, "pic_weixin": true, "location_select": true}

// BuildMenu resolves relative view URLs against baseURL and checks WeCom's menu limits
// (doc 90231): 1–3 buttons, 1–5 sub-buttons each, names ≤ 16 bytes (top) / ≤ 40 bytes (sub),
// keys ≤ 128 bytes, URLs ≤ 1024 bytes. Errors name the config path, e.g. menu[2].sub_button[0].name.
func BuildMenu(baseURL string, buttons []MenuButton) ([]MenuButton, error) {
	if len(buttons) == 0 || len(buttons) > 3 {
		return nil, fmt.Errorf("menu: WeCom allows 1 to 3 top-level buttons, got %d", len(buttons))
	}
	out := make([]MenuButton, len(buttons))
	for i, b := range buttons {
		path := fmt.Sprintf("menu[%d]", i)
		if err := checkButton(path, &b, 16, baseURL); err != nil {
			return nil, err
		}
		if len(b.SubButton) > 0 {
			if b.Type != "" {
				return nil, fmt.Errorf("%s.type: a button with sub_button must not have a type", path)
			}
			if len(b.SubButton) > 5 {
				return nil, fmt.Errorf("%s.sub_button: WeCom allows at most 5 sub-buttons, got %d", path, len(b.SubButton))
			}
			subs := make([]MenuButton, len(b.SubButton))
			for j, sb := range b.SubButton {
				sp := fmt.Sprintf("%s.sub_button[%d]", path, j)
				if len(sb.SubButton) > 0 {
					return nil, fmt.Errorf("%s.sub_button: WeCom menus have only two levels", sp)
				}
				if err := checkButton(sp, &sb, 40, baseURL); err != nil {
					return nil, err
				}
				if err := checkAction(sp, &sb); err != nil {
					return nil, err
				}
				subs[j] = sb
			}
			b.SubButton = subs
		} else if err := checkAction(path, &b); err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func checkButton(path string, b *MenuButton, maxName int, baseURL string) error {
	if b.Name == "" {
		return fmt.Errorf("%s.name: required", path)
	}
	if len(b.Name) > maxName {
		return fmt.Errorf("%s.name: %q is %d bytes; WeCom allows at most %d bytes (a Chinese character is 3)", path, b.Name, len(b.Name), maxName)
	}
	if strings.HasPrefix(b.URL, "/") {
		b.URL = strings.TrimRight(baseURL, "/") + b.URL
	}
	return nil
}

func checkAction(path string, b *MenuButton) error {
	if !menuTypes[b.Type] {
		return fmt.Errorf("%s.type: %q is not a WeCom menu type (click, view, scancode_push, …)", path, b.Type)
	}
	if b.Type == "view" {
		if !strings.HasPrefix(b.URL, "http://") && !strings.HasPrefix(b.URL, "https://") {
			return fmt.Errorf("%s.url: a view button needs an absolute http(s) URL or a path starting with /", path)
		}
		if len(b.URL) > 1024 {
			return fmt.Errorf("%s.url: at most 1024 bytes", path)
		}
		return nil
	}
	if b.Key == "" {
		return fmt.Errorf("%s.key: required for a %s button", path, b.Type)
	}
	if len(b.Key) > 128 {
		return fmt.Errorf("%s.key: at most 128 bytes", path)
	}
	return nil
}

// AppMenu is the menu `wecampus menu sync` writes: buttons (DefaultMenu when there are none, its
// click buttons then carrying helpKey) resolved and checked by BuildMenu, and every click button
// must carry helpKey: the service answers no other click (CONTRACT §5), so any other key would be
// a dead button. An empty helpKey skips that rule (the caller reports the missing key itself).
func AppMenu(baseURL, helpKey string, buttons []MenuButton) ([]MenuButton, error) {
	if len(buttons) == 0 {
		buttons = DefaultMenu()
		if helpKey != "" {
			setHelpKey(buttons, helpKey)
		}
	}
	menu, err := BuildMenu(baseURL, buttons)
	if err != nil || helpKey == "" {
		return menu, err
	}
	for i, b := range menu {
		if err := checkClickKey(fmt.Sprintf("menu[%d]", i), b, helpKey); err != nil {
			return nil, err
		}
		for j, sb := range b.SubButton {
			if err := checkClickKey(fmt.Sprintf("menu[%d].sub_button[%d]", i, j), sb, helpKey); err != nil {
				return nil, err
			}
		}
	}
	return menu, nil
}

// setHelpKey gives the click buttons of the default menu the help key.
func setHelpKey(buttons []MenuButton, key string) {
	for i := range buttons {
		if buttons[i].Type == "click" {
			buttons[i].Key = key
		}
		setHelpKey(buttons[i].SubButton, key)
	}
}

func checkClickKey(path string, b MenuButton, helpKey string) error {
	if b.Type == "click" && b.Key != helpKey {
		return fmt.Errorf("%s.key: %q is not answered by wecampus: a click button must use wecom.help_key (%q); use a view button for a link", path, b.Key, helpKey)
	}
	return nil
}

// SyncMenu writes menu to the app (menu/create).
func (s *Service) SyncMenu(ctx context.Context, menu []MenuButton) error {
	return s.WeCom.CreateMenu(ctx, menu)
}

// CurrentMenu reads the app's menu (menu/get).
func (s *Service) CurrentMenu(ctx context.Context) ([]MenuButton, error) {
	return s.WeCom.GetMenu(ctx)
}
