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

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+86": "'+86", "-1": "'-1", "@SUM": "'@SUM", "\tx": "'\tx", "\rx": "'\rx",
		"": "", "张三": "张三", "a=b": "a=b", "2021": "2021",
	} {
		if got := app.CSVCell(in); got != want {
			t.Errorf("CSVCell(%q) = %q, want %q", in, got, want)
		}
	}
}
