package app_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wecampus/wecampus/app"
)

// ticketCAS is an app.CAS that accepts one ticket per identity it was given: the identity is
// what the test says the school's CAS released (the CAS client itself is tested in package cas).
type ticketCAS map[string]app.CASIdentity

func (ticketCAS) LoginURL(string) string  { return "" }
func (ticketCAS) LogoutURL(string) string { return "" }
func (c ticketCAS) Validate(_ context.Context, ticket, _ string) (*app.CASIdentity, error) {
	id, ok := c[ticket]
	if !ok {
		return nil, app.Errorf(app.EUNAUTHORIZED, "bad ticket")
	}
	return &id, nil
}

// login authenticates an identity through the service, as /bind/cas does.
func (f *fixture) login(id app.CASIdentity) *app.Person {
	f.t.Helper()
	f.svc.CAS = ticketCAS{"ST-1": id}
	l, err := f.svc.Authenticate(f.ctx, "ST-1", "https://x.edu.cn/bind/cas")
	if err != nil {
		f.t.Fatalf("Authenticate %+v: %v", id, err)
	}
	return l.Person
}

// seedPerson stores a live binding as a bind by person would, with its person key.
func (f *fixture) seedPerson(p *app.Person, mobile string) *app.Binding {
	f.t.Helper()
	res, err := f.svc.Bind(f.ctx, f.flow(), p, mobile)
	if err != nil || res.Binding == nil {
		f.t.Fatalf("bind %s: %+v %v", p.Number, res, err)
	}
	return res.Binding.Binding
}

// TestRebindGate: with identity.person_attribute configured, equal names are not proof; 换绑 is
// offered, and its code sent, only between bindings of the same person id.
func TestRebindGate(t *testing.T) {
	f := newFixture(t, 0)
	f.svc.PersonIDKey = []byte("person-id-test-key")
	victim := f.login(app.CASIdentity{Number: oldNumber, Name: "张三", Type: "student", PersonID: "ID-victim"})
	old := f.seedPerson(victim, heldMobile)
	if old.PersonKey == "" || strings.Contains(old.PersonKey, "ID-victim") {
		t.Fatalf("stored person key %q: want a keyed hash", old.PersonKey)
	}

	stranger := f.login(app.CASIdentity{Number: newNumber, Name: "张三", Type: "student", PersonID: "ID-stranger"})
	res, err := f.svc.Bind(f.ctx, f.flow(), stranger, heldMobile)
	if err != nil || res.Conflict == nil || res.Conflict.RebindFrom != 0 {
		t.Fatalf("same name, other person: %+v %v; want a conflict without 换绑", res, err)
	}
	err = f.svc.SendRebindCode(f.ctx, f.flow(), stranger, old.ID, heldMobile, "10.0.0.1")
	if app.ErrorCode(err) != app.EFORBIDDEN || f.sms.count() != 0 {
		t.Fatalf("stranger's code request: %v, %d SMS sent; want EFORBIDDEN and none", err, f.sms.count())
	}
	noID := f.login(app.CASIdentity{Number: newNumber, Name: "张三", Type: "student"})
	if res, _ := f.svc.Bind(f.ctx, f.flow(), noID, heldMobile); res == nil || res.Conflict == nil || res.Conflict.RebindFrom != 0 {
		t.Fatalf("no person id released: %+v; want no 换绑", res)
	}

	same := f.login(app.CASIdentity{Number: newNumber, Name: "张叁", Type: "student", PersonID: "ID-victim"})
	res, err = f.svc.Bind(f.ctx, f.flow(), same, heldMobile)
	if err != nil || res.Conflict == nil || res.Conflict.RebindFrom != old.ID {
		t.Fatalf("same person id (name spelt differently): %+v %v; want 换绑 offered", res, err)
	}
	if err := f.svc.SendRebindCode(f.ctx, f.flow(), same, old.ID, heldMobile, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if f.sms.count() != 1 {
		t.Fatalf("%d SMS sent, want 1", f.sms.count())
	}
}

// TestRebindCodeLimits: 换绑 codes are capped per requesting number, do not use up the holder's
// own daily cap, say what they do, and leave a trace on the holder's binding.
func TestRebindCodeLimits(t *testing.T) {
	f := newFixture(t, 0)
	f.svc.SMSPolicy.DailyLimit = 4
	f.svc.SMSPolicy.RebindDailyLimit = 2
	old := f.seed(oldNumber, "张三", heldMobile, app.StatusActive)
	p := student(newNumber, "张三")
	for i := range 2 {
		if err := f.svc.SendRebindCode(f.ctx, f.flow(), p, old.ID, heldMobile, "10.0.0.1"); err != nil {
			t.Fatalf("rebind code %d: %v", i+1, err)
		}
		f.clock.advance(2 * 60e9)
	}
	msg := f.sms.last(t).message
	for _, want := range []string{"换绑", "201*****01 换绑到 202*****01", "如非本人申请，请忽略"} {
		if !strings.Contains(msg, want) {
			t.Errorf("rebind SMS %q lacks %q", msg, want)
		}
	}
	err := f.svc.SendRebindCode(f.ctx, f.flow(), p, old.ID, heldMobile, "10.0.0.1")
	if app.ErrorCode(err) != app.ETOOMANY || !strings.Contains(app.ErrorMessage(err), "换绑") {
		t.Fatalf("third rebind code from one number: %v; want ETOOMANY", err)
	}
	// The holder still has the whole of their own daily cap.
	for i := range 4 {
		if err := f.svc.SendCode(f.ctx, heldMobile, app.PurposeUnbind, "10.0.0.2"); err != nil {
			t.Fatalf("holder's own code %d: %v", i+1, err)
		}
		f.clock.advance(2 * 60e9)
	}
	if err := f.svc.SendCode(f.ctx, heldMobile, app.PurposeUnbind, "10.0.0.2"); app.ErrorCode(err) != app.ETOOMANY {
		t.Fatalf("holder's 5th code: %v; want ETOOMANY", err)
	}
	evs, err := f.svc.Events(f.ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Kind == app.EventRebindCode && strings.Contains(ev.Detail, newNumber) && !strings.Contains(ev.Detail, heldMobile) {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d %s events naming the requester (mobile masked), want 2: %+v", n, app.EventRebindCode, evs)
	}
}

// TestAuthenticateCapsCASInput: a CAS name of any length binds with the name cut to WeCom's 64
// characters (and says so); a number that cannot be stored is refused.
func TestAuthenticateCapsCASInput(t *testing.T) {
	f := newFixture(t, 0)
	long := strings.Repeat("长", 10000)
	p := f.login(app.CASIdentity{Number: "2023000009", Name: long, Type: "student", PersonID: strings.Repeat("x", 5000)})
	if utf8.RuneCountInString(p.Name) != 64 || !p.NameCut || p.Key != "" {
		t.Fatalf("person %d runes, cut=%v, key=%q", utf8.RuneCountInString(p.Name), p.NameCut, p.Key)
	}
	res, err := f.svc.Bind(f.ctx, f.flow(), p, "13800005678")
	if err != nil || res.Binding == nil {
		t.Fatalf("bind with a long name: %+v %v", res, err)
	}
	if m := f.member("2023000009"); utf8.RuneCountInString(m.Name) != 64 {
		t.Fatalf("WeCom member name %d runes", utf8.RuneCountInString(m.Name))
	}
	f.svc.CAS = ticketCAS{"ST-2": {Number: strings.Repeat("9", 65), Name: "李四", Type: "student"}}
	_, err = f.svc.Authenticate(f.ctx, "ST-2", "https://x.edu.cn/bind/cas")
	if app.ErrorCode(err) != app.EFORBIDDEN {
		t.Fatalf("65-digit number: %v; want EFORBIDDEN", err)
	}
	f.svc.CAS = ticketCAS{"ST-3": {Number: "2023000010", Name: "王五", Type: strings.Repeat("t", 1000)}}
	_, err = f.svc.Authenticate(f.ctx, "ST-3", "https://x.edu.cn/bind/cas")
	if app.ErrorCode(err) != app.EFORBIDDEN || len(app.ErrorMessage(err)) > 300 {
		t.Fatalf("1000-char type: %v; want a short EFORBIDDEN", err)
	}
}
