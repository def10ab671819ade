package app_test

import (
	"testing"

	"github.com/wecampus/wecampus/app"
)

func TestAdminPolicyRole(t *testing.T) {
	p := app.AdminPolicy{Operators: []string{"ZhangSan", " lisi "}, Viewers: []string{"wangwu", "lisi"}}
	for userID, want := range map[string]app.AdminRole{
		"zhangsan": app.RoleOperator, "LISI": app.RoleOperator, "wangwu": app.RoleViewer, "zhaoliu": app.RoleNone, "": app.RoleNone,
	} {
		if got := p.Role(userID); got != want {
			t.Errorf("Role(%q) = %q, want %q", userID, got, want)
		}
	}
}
