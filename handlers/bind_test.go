package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wecampus/wecampus/app"
)

func TestBindHappyPath(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.cas.AddUser("2021123456", "pw", "张三", "student")
		m := e.newMember()

		page := m.login("2021123456")
		if page.status != http.StatusOK || !hasForm(string(page.body), "/bind/mobile", "mobile") {
			t.Fatalf("/bind/cas: %d %s", page.status, page.body)
		}
		if !strings.Contains(string(page.body), "张三") || !strings.Contains(string(page.body), "2021123456") {
			t.Fatal("the mobile form must show who is binding")
		}
		r := m.post("/bind/mobile", url.Values{"mobile": {"+86 138 0000 1234"}})
		if r.status != http.StatusOK {
			t.Fatalf("/bind/mobile: %d %s", r.status, r.body)
		}
		mem, ok := e.sim.Member("2021123456")
		if !ok || mem.Mobile != "13800001234" || mem.Name != "张三" || len(mem.Department) != 1 || mem.Department[0] != 2 {
			t.Fatalf("member in WeCom: %+v %v", mem, ok)
		}
		b, err := e.db.FindLiveBinding(context.Background(), "number", "2021123456")
		if err != nil || b.Status != app.StatusPending || b.UserID != "2021123456" || b.Mobile != "13800001234" {
			t.Fatalf("binding: %+v %v", b, err)
		}
		if n := e.sim.CallCount("user/create"); n != 1 {
			t.Fatalf("user/create calls = %d", n)
		}
	})
}
