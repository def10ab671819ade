package wecomtest_test

import (
	"fmt"
	"testing"

	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// TestUserBatchDelete: all or nothing (one unknown userid fails the call with 60111 and deletes
// nobody), at most 200 userids, the contacts token only, recorded and open to fault injection.
func TestUserBatchDelete(t *testing.T) {
	s := newSim(t)
	appTok, tok := s.token(s.AppSecret()), s.token(s.ContactsSecret())
	var ids []string
	for i := range 201 {
		id := fmt.Sprintf("u%03d", i)
		if err := s.AddMember(wecomtest.Member{UserID: id, Name: "张三", Mobile: fmt.Sprintf("138%08d", i), Department: []int64{1}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	list := func(ids ...string) map[string]any { return map[string]any{"useridlist": ids} }

	wantCode(t, "app token", s.call("user/batchdelete", tq(appTok), list("u000")), 48002)
	wantCode(t, "empty", s.call("user/batchdelete", tq(tok), list()), 40063)
	wantCode(t, "201 userids", s.call("user/batchdelete", tq(tok), list(ids...)), 40058)
	wantCode(t, "one unknown", s.call("user/batchdelete", tq(tok), list("u000", "ghost", "u001")), 60111)
	wantCode(t, "one malformed", s.call("user/batchdelete", tq(tok), list("u000", "bad id")), 40003)
	if n := len(s.Members()); n != 201 {
		t.Fatalf("a refused batch deleted members: %d left", n)
	}
	s.Inject("user/batchdelete", 1, wecomtest.Fault{ErrCode: -1})
	wantCode(t, "injected", s.call("user/batchdelete", tq(tok), list("u000")), -1)
	if _, ok := s.Member("u000"); !ok {
		t.Fatal("an injected errcode applied the call")
	}

	a := s.call("user/batchdelete", tq(tok), list(append([]string{"U000"}, ids[:200]...)...)) // 201 with a repeat
	wantCode(t, "201 with a repeat", a, 40058)
	a = s.call("user/batchdelete", tq(tok), list(append([]string{"U000"}, ids[1:200]...)...))
	wantCode(t, "200, case-insensitive", a, 0)
	if a.str("errmsg") != "deleted" {
		t.Errorf("errmsg %q", a.str("errmsg"))
	}
	if m := s.Members(); len(m) != 1 || m[0].UserID != "u200" {
		t.Fatalf("members left: %v", m)
	}
	if n := s.CallCount("user/batchdelete"); n != 8 {
		t.Errorf("%d calls recorded, want 8", n)
	}
	if err := s.RemoveMember("U200"); err != nil || len(s.Members()) != 0 {
		t.Fatalf("RemoveMember: %v, %d left", err, len(s.Members()))
	}
	if err := s.RemoveMember("u200"); err == nil {
		t.Fatal("RemoveMember of a missing member succeeded")
	}
}
