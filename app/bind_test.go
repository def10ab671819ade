package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

func TestBind(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := newFixture(t, 0)
		p := student("2021123456", "张三")
		res, err := f.svc.Bind(f.ctx, f.flow(), p, "+86 138-0000-1234")
		if err != nil {
			t.Fatal(err)
		}
		b := res.Binding
		if b == nil || res.AlreadyBound != nil || res.Conflict != nil {
			t.Fatalf("result %+v", res)
		}
		if b.Number != p.Number || b.UserID != p.UserID || b.Mobile != "13800001234" || b.Status != app.StatusPending || b.Label != "学生" {
			t.Fatalf("binding %+v, label %q", b.Binding, b.Label)
		}
		if !strings.HasPrefix(res.QRCodeURL, testJoinQR) {
			t.Fatalf("QR code %q: a pending binding's follow page needs it", res.QRCodeURL)
		}
		m := f.member(p.UserID)
		if m.Mobile != "13800001234" || m.Name != "张三" || m.Status != 4 || !m.ToInvite || len(m.Department) != 1 || m.Department[0] != 2 {
			t.Fatalf("member %+v", m)
		}
		if live := f.live(p.Number); live == nil || live.ID != b.ID {
			t.Fatalf("stored %+v", live)
		}
		f.wantIntents("bound")
		if n := f.sim.CallCount("user/create"); n != 1 {
			t.Fatalf("user/create calls = %d", n)
		}

		// A second submission writes nothing and shows the binding.
		res, err = f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if err != nil || res.AlreadyBound == nil || res.AlreadyBound.ID != b.ID || res.Binding != nil {
			t.Fatalf("second bind: %+v %v", res, err)
		}
		if res.QRCodeURL == "" || res.AlreadyBound.Label != "学生" {
			t.Fatalf("already bound view: %+v", res)
		}
		if n := f.writes(); n != 1 {
			t.Fatalf("WeCom writes = %d after a second submission", n)
		}
		f.wantIntents("bound")
	})

	t.Run("ErrMobileInvalid", func(t *testing.T) {
		f := newFixture(t, 0)
		for _, raw := range []string{"", "1380000123", "+1 650 253 0000", "<script>"} {
			res, err := f.svc.Bind(f.ctx, f.flow(), student("2021123456", "张三"), raw)
			if app.ErrorCode(err) != app.EINVALID || res != nil {
				t.Fatalf("Bind(%q) = %+v, %v; want EINVALID", raw, res, err)
			}
		}
		if n := len(f.sim.Calls()); n != 0 {
			t.Fatalf("%d WeCom calls for invalid mobiles", n)
		}
		f.wantIntents()
	})

	t.Run("ConflictHeldByAnotherPerson", func(t *testing.T) {
		f := newFixture(t, 0)
		f.seed("2020000001", "李四", "13800001234", app.StatusActive)
		res, err := f.svc.Bind(f.ctx, f.flow(), student("2021123456", "张三"), "138 0000 1234")
		if err != nil || res.Conflict == nil {
			t.Fatalf("%+v %v", res, err)
		}
		c := res.Conflict
		if c.RebindFrom != 0 || c.HolderNumber != "20******01" || c.Mobile != "13800001234" || !strings.Contains(c.Message, "138****1234") {
			t.Fatalf("conflict %+v", c)
		}
		if f.writes() != 0 || f.live("2021123456") != nil {
			t.Fatal("a conflict wrote something")
		}
		f.wantIntents()
	})

	t.Run("ConflictHeldByOwnEarlierNumber", func(t *testing.T) {
		f := newFixture(t, 0)
		old := f.seed("2019000001", "张三", "13800001234", app.StatusActive)
		res, err := f.svc.Bind(f.ctx, f.flow(), student("2023000001", "张三"), "13800001234")
		if err != nil || res.Conflict == nil {
			t.Fatalf("%+v %v", res, err)
		}
		if res.Conflict.RebindFrom != old.ID || res.Conflict.Mobile != "13800001234" || !strings.Contains(res.Conflict.Message, "换绑") {
			t.Fatalf("conflict %+v: want the 换绑 offer", res.Conflict)
		}
		if f.writes() != 0 {
			t.Fatal("a conflict wrote something")
		}
	})

	t.Run("AdoptsMemberWhoJoined", func(t *testing.T) {
		// An admin imported the member, who joined with the same mobile: 60102, then adopt.
		f := newFixture(t, 0)
		p := student("2021123456", "张三")
		if err := f.sim.AddMember(wecomtest.Member{UserID: p.UserID, Name: "张三", Mobile: "13800001234", Department: []int64{1}, Status: 1}); err != nil {
			t.Fatal(err)
		}
		res, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if err != nil || res.Binding == nil || res.Binding.Status != app.StatusActive {
			t.Fatalf("%+v %v", res, err)
		}
		if res.QRCodeURL != "" {
			t.Fatalf("QR code %q for a member who already joined", res.QRCodeURL)
		}
		if m := f.member(p.UserID); len(m.Department) != 1 || m.Department[0] != 2 {
			t.Fatalf("adopted member not moved to the rule's department: %+v", m)
		}
		f.wantIntents("bound")
	})

	t.Run("RefusedMemberJoinedWithAnotherMobile", func(t *testing.T) {
		f := newFixture(t, 0)
		p := student("2021123456", "张三")
		if err := f.sim.AddMember(wecomtest.Member{UserID: p.UserID, Name: "张三", Mobile: "13900009999", Department: []int64{2}, Status: 1}); err != nil {
			t.Fatal(err)
		}
		res, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if app.ErrorCode(err) != app.ECONFLICT || res != nil || !strings.Contains(app.ErrorMessage(err), "139****9999") {
			t.Fatalf("%+v %v", res, err)
		}
		if m := f.member(p.UserID); m.Mobile != "13900009999" {
			t.Fatalf("member changed: %+v", m)
		}
		if f.live(p.Number) != nil {
			t.Fatal("binding stored")
		}
		f.wantIntents("failed")
	})

	t.Run("MobileHeldInWeCom", func(t *testing.T) {
		// Another member, not bound through us, has the mobile: 60104, then user/getuserid.
		f := newFixture(t, 0)
		if err := f.sim.AddMember(wecomtest.Member{UserID: "t2008001", Name: "钱七", Mobile: "13800001234", Department: []int64{3}, Status: 1}); err != nil {
			t.Fatal(err)
		}
		res, err := f.svc.Bind(f.ctx, f.flow(), student("2021123456", "张三"), "13800001234")
		if err != nil || res.Conflict == nil || res.Conflict.RebindFrom != 0 || res.Conflict.HolderNumber != "t2****01" {
			t.Fatalf("%+v %v", res, err)
		}
		f.noMember("2021123456")
		f.wantIntents("mobile_taken")
	})

	t.Run("WeComBusyThenRecovers", func(t *testing.T) {
		f := newFixture(t, 0)
		p := student("2021123456", "张三")
		f.sim.Inject("user/create", 1, wecomtest.Fault{ErrCode: -1})
		res, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if app.ErrorCode(err) != app.EUNAVAILABLE || res != nil || strings.Contains(app.ErrorMessage(err), "-1") {
			t.Fatalf("%+v %v", res, err)
		}
		f.noMember(p.UserID)
		f.wantIntents("failed")
		if res, err = f.svc.Bind(f.ctx, f.flow(), p, "13800001234"); err != nil || res.Binding == nil {
			t.Fatalf("after recovery: %+v %v", res, err)
		}
		f.wantIntents("failed", "bound")
	})

	t.Run("ConflictWhileAnotherRequestIsOpen", func(t *testing.T) {
		// A concurrent request (on any replica) holds the intent's claim: wait as long as the
		// claim says, never read or write WeCom for it.
		f := newFixture(t, 0)
		p := student("2021123456", "张三")
		until := f.clock.now().Add(25 * time.Second)
		if err := f.db.CreateIntent(f.ctx, &app.Intent{Op: app.OpBind, Number: p.Number, UserID: p.UserID, Mobile: "13800001234",
			Name: p.Name, Type: p.Type, Department: 2, CreatedAt: f.clock.now(), ClaimOwner: "other", ClaimUntil: &until, Tries: 1}); err != nil {
			t.Fatal(err)
		}
		f.clock.advance(4 * time.Second)
		res, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if app.ErrorCode(err) != app.ECONFLICT || res != nil || !strings.Contains(app.ErrorMessage(err), "正在为你办理绑定，请约 25 秒后") {
			t.Fatalf("%+v %v", res, err)
		}
		if n := len(f.sim.Calls()); n != 0 {
			t.Fatalf("%d WeCom calls while another request is in progress", n)
		}

		// The other request died after its user/create: once its claim ran out, a retry
		// resolves the intent at once by reading, and adopts the member as it is.
		if err := f.sim.AddMember(wecomtest.Member{UserID: p.UserID, Name: p.Name, Mobile: "13800001234", Department: []int64{2}, Status: 4}); err != nil {
			t.Fatal(err)
		}
		f.clock.advance(25 * time.Second)
		res, err = f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if err != nil || res.AlreadyBound == nil || res.AlreadyBound.Status != app.StatusPending {
			t.Fatalf("retry after the claim ran out: %+v %v", res, err)
		}
		if f.writes() != 0 {
			t.Fatal("the retry wrote to WeCom")
		}
		f.wantIntents("bound")
	})
}

// casStub is an app.CAS that accepts every ticket as id.
type casStub struct{ id app.CASIdentity }

func (casStub) LoginURL(service string) string { return "https://cas.example/login?service=" + service }
func (casStub) LogoutURL(service string) string {
	return "https://cas.example/logout?service=" + service
}
func (c casStub) Validate(context.Context, string, string) (*app.CASIdentity, error) {
	id := c.id
	return &id, nil
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t, 0)
	const service = "https://x.edu.cn/bind/cas"
	f.svc.CAS = casStub{app.CASIdentity{Number: "2021123456", Type: "student"}}

	login, err := f.svc.Authenticate(f.ctx, "ST-1", service)
	if err != nil || login.Bound != nil {
		t.Fatalf("%+v %v", login, err)
	}
	want := app.Person{Number: "2021123456", Name: "2021123456", Type: "student", UserID: "2021123456", Department: 2, Label: "学生"}
	if *login.Person != want {
		t.Fatalf("person %+v, want %+v (a missing name falls back to the number)", *login.Person, want)
	}

	b := f.seed("2021123456", "张三", "13800001234", app.StatusPending)
	login, err = f.svc.Authenticate(f.ctx, "ST-2", service)
	if err != nil || login.Bound == nil || login.Bound.AlreadyBound == nil || login.Bound.AlreadyBound.ID != b.ID {
		t.Fatalf("bound: %+v %v", login, err)
	}
	if login.Bound.AlreadyBound.Label != "学生" || !strings.HasPrefix(login.Bound.QRCodeURL, testJoinQR) {
		t.Fatalf("already-bound view %+v", login.Bound)
	}

	if _, err := f.svc.Authenticate(f.ctx, "", service); app.ErrorCode(err) != app.EUNAUTHORIZED {
		t.Fatalf("no ticket: %v", err)
	}
	f.svc.CAS = casStub{app.CASIdentity{Number: "2010000001", Name: "校友", Type: "alumni"}}
	if _, err := f.svc.Authenticate(f.ctx, "ST-3", service); app.ErrorCode(err) != app.EFORBIDDEN {
		t.Fatalf("alumni: %v", err)
	}
	if got := f.svc.LoginURL(service); got != "https://cas.example/login?service="+service {
		t.Fatalf("LoginURL = %q", got)
	}
}

func TestAdmit(t *testing.T) {
	f := newFixture(t, 0)
	rule, userID, err := f.svc.Admit(app.CASIdentity{Number: "2021123456", Type: "student"})
	if err != nil || rule.Department != 2 || userID != "2021123456" {
		t.Fatalf("student: %+v %q %v", rule, userID, err)
	}
	if _, _, err := f.svc.Admit(app.CASIdentity{Number: "2010000001", Type: "alumni"}); app.ErrorCode(err) != app.EFORBIDDEN {
		t.Fatalf("alumni: %v", err)
	}
	if _, _, err := (&app.Service{}).Admit(app.CASIdentity{Number: "1", Type: "student"}); app.ErrorCode(err) != app.EINTERNAL {
		t.Fatalf("no identity rules: %v", err)
	}
}
