package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
)

// newBinding is a pending binding for number, with a userid and mobile derived from it.
func newBinding(number string) *app.Binding {
	return &app.Binding{
		Number:     number,
		UserID:     "u" + number,
		Mobile:     "138" + number,
		Name:       "张三",
		Type:       "student",
		Department: 2,
		Status:     app.StatusPending,
	}
}

// mustCreate stores b and fails the test on error.
func mustCreate(tb testing.TB, db *store.DB, b *app.Binding) *app.Binding {
	tb.Helper()
	if err := db.CreateBinding(context.Background(), b, app.Event{Kind: app.EventBound, Actor: app.ActorMember}); err != nil {
		tb.Fatalf("CreateBinding %s: %v", b.Number, err)
	}
	return b
}

func TestCreateBinding(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		clk.Add(1500 * time.Microsecond) // sub-millisecond parts are dropped on both engines
		b := newBinding("20250001")
		b.UserID = "ZhangSan"
		ev := app.Event{Kind: app.EventBound, Actor: app.ActorMember, Detail: "mobile 138****0001"}
		if err := db.CreateBinding(ctx, b, ev); err != nil {
			t.Fatal(err)
		}
		want := t0.Add(time.Millisecond)
		if b.ID == 0 || !b.CreatedAt.Equal(want) || !b.UpdatedAt.Equal(want) {
			t.Fatalf("filled in ID %d, CreatedAt %v, UpdatedAt %v; want an id and %v", b.ID, b.CreatedAt, b.UpdatedAt, want)
		}
		got, err := db.FindBindingByID(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "stored binding", got, b)

		evs, err := db.FindEvents(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "events", evs, []*app.Event{{
			ID: evs[0].ID, BindingID: b.ID, Kind: app.EventBound, Actor: app.ActorMember,
			Number: "20250001", UserID: "ZhangSan", Detail: "mobile 138****0001", CreatedAt: want,
		}})
	})
}

func TestCreateBindingInvalid(t *testing.T) {
	db, _ := MustOpenDB(t)
	for _, b := range []*app.Binding{
		{Number: "1", Status: "bogus"},
		{Number: "1"},
		{Status: app.StatusPending},
	} {
		wantCode(t, db.CreateBinding(context.Background(), b, app.Event{}), app.EINVALID)
	}
}

// TestLiveUniqueness: at most one live binding per number, per userid (any case) and per mobile;
// released bindings block nothing.
func TestLiveUniqueness(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		mustCreate(t, db, &app.Binding{Number: "100", UserID: "Alice", Mobile: "13800000100", Status: app.StatusActive})
		released := mustCreate(t, db, &app.Binding{Number: "200", UserID: "bob", Mobile: "13800000200", Status: app.StatusPending})
		if _, err := db.UpdateBinding(ctx, released.ID, app.BindingUpdate{Status: app.Ptr(app.StatusUnbound)}, app.Event{Kind: app.EventUnbound}); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, db, &app.Binding{Number: "300", UserID: "carol", Mobile: "13800000300", Status: app.StatusRebound})

		for _, tc := range []struct {
			name string
			b    app.Binding
			want string
		}{
			{"SameNumber", app.Binding{Number: "100", UserID: "x1", Mobile: "1", Status: app.StatusPending}, app.ECONFLICT},
			{"SameUserID", app.Binding{Number: "x2", UserID: "Alice", Mobile: "2", Status: app.StatusPending}, app.ECONFLICT},
			{"SameUserIDOtherCase", app.Binding{Number: "x3", UserID: "aLICE", Mobile: "3", Status: app.StatusActive}, app.ECONFLICT},
			{"SameMobile", app.Binding{Number: "x4", UserID: "x4", Mobile: "13800000100", Status: app.StatusPending}, app.ECONFLICT},
			{"UnboundSameKeys", app.Binding{Number: "100", UserID: "alice", Mobile: "13800000100", Status: app.StatusUnbound}, ""},
			{"ReboundSameKeys", app.Binding{Number: "100", UserID: "alice", Mobile: "13800000100", Status: app.StatusRebound}, ""},
			{"ReleasedKeysFree", app.Binding{Number: "200", UserID: "BOB", Mobile: "13800000200", Status: app.StatusPending}, ""},
			{"ReboundKeysFree", app.Binding{Number: "300", UserID: "carol", Mobile: "13800000300", Status: app.StatusActive}, ""},
			{"EmptyUserIDAndMobile", app.Binding{Number: "x5", Status: app.StatusPending}, ""},
			{"EmptyUserIDAndMobileAgain", app.Binding{Number: "x6", Status: app.StatusPending}, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := tc.b
				wantCode(t, db.CreateBinding(ctx, &b, app.Event{Kind: app.EventBound}), tc.want)
			})
		}
		// A refused binding leaves no row and no event behind.
		all, err := db.FindBindings(ctx, app.BindingFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 9 {
			t.Fatalf("%d bindings stored, want 9", len(all))
		}
	})
}

func TestUpdateBinding(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		b := mustCreate(t, db, newBinding("1001"))

		t.Run("Partial", func(t *testing.T) {
			clk.Add(time.Second)
			got, err := db.UpdateBinding(ctx, b.ID, app.BindingUpdate{
				Name:       app.Ptr("李四"),
				Department: app.Ptr(int64(0)), // zero values are written too
				IfStatus:   []app.Status{app.StatusPending},
			}, app.Event{Kind: app.EventRepaired, Actor: app.ActorAdmin})
			if err != nil {
				t.Fatal(err)
			}
			want := *b
			want.Name, want.Department, want.UpdatedAt = "李四", 0, t0.Add(time.Second)
			wantEqual(t, "returned binding", got, &want)
			stored, err := db.FindBindingByID(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantEqual(t, "stored binding", stored, &want)
		})
		t.Run("NotFound", func(t *testing.T) {
			_, err := db.UpdateBinding(ctx, 999999, app.BindingUpdate{Name: app.Ptr("x")}, app.Event{Kind: "k"})
			wantCode(t, err, app.ENOTFOUND)
		})
		t.Run("InvalidStatus", func(t *testing.T) {
			_, err := db.UpdateBinding(ctx, b.ID, app.BindingUpdate{Status: app.Ptr(app.Status("gone"))}, app.Event{})
			wantCode(t, err, app.EINVALID)
		})
		t.Run("IfStatusConflict", func(t *testing.T) {
			_, err := db.UpdateBinding(ctx, b.ID, app.BindingUpdate{
				Status:   app.Ptr(app.StatusUnbound),
				IfStatus: []app.Status{app.StatusActive},
			}, app.Event{Kind: app.EventUnbound})
			wantCode(t, err, app.ECONFLICT)
			stored, err := db.FindBindingByID(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Status != app.StatusPending {
				t.Fatalf("status = %s after a refused update", stored.Status)
			}
		})
		t.Run("UserIDChangeMovesLiveKey", func(t *testing.T) {
			got, err := db.UpdateBinding(ctx, b.ID, app.BindingUpdate{UserID: app.Ptr("NewID")},
				app.Event{Kind: app.EventUserIDChanged, Actor: app.ActorWeCom})
			if err != nil {
				t.Fatal(err)
			}
			if got.UserID != "NewID" {
				t.Fatalf("userid = %q", got.UserID)
			}
			if _, err := db.FindLiveBinding(ctx, "userid", "newid"); err != nil {
				t.Fatalf("by new userid: %v", err)
			}
			_, err = db.FindLiveBinding(ctx, "userid", "u1001")
			wantCode(t, err, app.ENOTFOUND)
			mustCreate(t, db, &app.Binding{Number: "other", UserID: "u1001", Status: app.StatusPending})
		})
		t.Run("CollisionOnUpdate", func(t *testing.T) {
			other := mustCreate(t, db, newBinding("1002"))
			_, err := db.UpdateBinding(ctx, other.ID, app.BindingUpdate{Mobile: app.Ptr(b.Mobile)}, app.Event{Kind: app.EventMobileChanged})
			wantCode(t, err, app.ECONFLICT)
		})
		t.Run("ReleaseKeepsHistory", func(t *testing.T) {
			clk.Add(time.Second)
			got, err := db.UpdateBinding(ctx, b.ID, app.BindingUpdate{
				Status:   app.Ptr(app.StatusUnbound),
				Reason:   app.Ptr("member request"),
				IfStatus: []app.Status{app.StatusPending, app.StatusActive},
			}, app.Event{Kind: app.EventUnbound, Actor: app.ActorMember})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != app.StatusUnbound || got.Reason != "member request" {
				t.Fatalf("got %+v", got)
			}
			_, err = db.FindLiveBinding(ctx, "number", "1001")
			wantCode(t, err, app.ENOTFOUND)
			// The number is free again, and the old row is still there with its trail.
			nb := mustCreate(t, db, &app.Binding{Number: "1001", UserID: "NEWID", Mobile: b.Mobile, Status: app.StatusPending})
			old, err := db.FindBindingByID(ctx, b.ID)
			if err != nil || old.Status != app.StatusUnbound {
				t.Fatalf("old binding = %+v, %v", old, err)
			}
			evs, err := db.FindEvents(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, ev := range evs {
				kinds = append(kinds, ev.Kind)
				if ev.BindingID != b.ID || ev.Number != "1001" {
					t.Fatalf("event not filled from the row: %+v", ev)
				}
			}
			wantEqual(t, "event kinds", kinds, []string{app.EventBound, app.EventRepaired, app.EventUserIDChanged, app.EventUnbound})
			if evs[3].UserID != "NewID" {
				t.Fatalf("event userid = %q, want the binding's current one", evs[3].UserID)
			}

			// Re-activating the old row would give the number two live bindings.
			_, err = db.UpdateBinding(ctx, b.ID, app.BindingUpdate{Status: app.Ptr(app.StatusActive)}, app.Event{Kind: app.EventRepaired})
			wantCode(t, err, app.ECONFLICT)
			// Rebind the new one away, and the old one may come back.
			if _, err := db.UpdateBinding(ctx, nb.ID, app.BindingUpdate{Status: app.Ptr(app.StatusRebound), ReboundTo: app.Ptr(b.ID)},
				app.Event{Kind: app.EventRebound}); err != nil {
				t.Fatal(err)
			}
			if _, err := db.UpdateBinding(ctx, b.ID, app.BindingUpdate{Status: app.Ptr(app.StatusActive)}, app.Event{Kind: app.EventRepaired}); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func TestFindLiveBinding(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		live := mustCreate(t, db, &app.Binding{Number: "n1", UserID: "MixedCase", Mobile: "13900000001", Status: app.StatusActive})
		mustCreate(t, db, &app.Binding{Number: "n2", UserID: "gone", Mobile: "13900000002", Status: app.StatusUnbound})
		for _, tc := range []struct {
			field, value string
			want         string
		}{
			{"number", "n1", ""},
			{"userid", "MixedCase", ""},
			{"userid", "mixedcase", ""},
			{"userid", "MIXEDCASE", ""},
			{"mobile", "13900000001", ""},
			{"number", "N1", app.ENOTFOUND},
			{"number", "n2", app.ENOTFOUND},
			{"userid", "gone", app.ENOTFOUND},
			{"mobile", "13900000002", app.ENOTFOUND},
			{"mobile", "", app.ENOTFOUND},
			{"name", "x", app.EINTERNAL},
		} {
			t.Run(tc.field+"="+tc.value, func(t *testing.T) {
				got, err := db.FindLiveBinding(ctx, tc.field, tc.value)
				wantCode(t, err, tc.want)
				if err == nil && got.ID != live.ID {
					t.Fatalf("found binding %d, want %d", got.ID, live.ID)
				}
			})
		}
	})
}

func TestFindLatestBinding(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		// "k1" is A's number, B's userid and C's mobile; all live.
		a := mustCreate(t, db, &app.Binding{Number: "k1", UserID: "ua", Mobile: "ma", Status: app.StatusActive})
		b := mustCreate(t, db, &app.Binding{Number: "nb", UserID: "K1", Mobile: "mb", Status: app.StatusPending})
		mustCreate(t, db, &app.Binding{Number: "nc", UserID: "uc", Mobile: "k1", Status: app.StatusActive})
		// "k2" is D's userid and E's mobile.
		d := mustCreate(t, db, &app.Binding{Number: "nd", UserID: "k2", Mobile: "md", Status: app.StatusActive})
		mustCreate(t, db, &app.Binding{Number: "ne", UserID: "ue", Mobile: "k2", Status: app.StatusActive})
		// "h" has history only: the most recently updated row wins, whichever key matched.
		clk.Add(time.Second)
		h1 := mustCreate(t, db, &app.Binding{Number: "h", UserID: "uh1", Mobile: "mh1", Status: app.StatusUnbound})
		clk.Add(time.Second)
		h2 := mustCreate(t, db, &app.Binding{Number: "nh2", UserID: "H", Mobile: "mh2", Status: app.StatusRebound})
		clk.Add(time.Second)
		h3 := mustCreate(t, db, &app.Binding{Number: "nh3", UserID: "uh3", Mobile: "h", Status: app.StatusUnbound})

		for _, tc := range []struct {
			key  string
			want int64
		}{
			{"k1", a.ID},
			{"K1", b.ID}, // not a number match (case-sensitive), but a userid match
			{"k2", d.ID},
			{"mb", b.ID},
			{"h", h3.ID},
		} {
			got, err := db.FindLatestBinding(ctx, tc.key)
			if err != nil {
				t.Fatalf("%s: %v", tc.key, err)
			}
			if got.ID != tc.want {
				t.Fatalf("%s: found binding %d, want %d", tc.key, got.ID, tc.want)
			}
		}
		// Touching an older historical row makes it the latest.
		clk.Add(time.Second)
		if _, err := db.UpdateBinding(ctx, h1.ID, app.BindingUpdate{Reason: app.Ptr("note")}, app.Event{Kind: "note"}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FindLatestBinding(ctx, "h"); err != nil || got.ID != h1.ID {
			t.Fatalf("after update: %+v, %v; want %d", got, err, h1.ID)
		}
		_ = h2
		for _, key := range []string{"nobody", ""} {
			_, err := db.FindLatestBinding(ctx, key)
			wantCode(t, err, app.ENOTFOUND)
		}
	})
}

func TestFindBindings(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		var ids []int64
		for i, st := range []app.Status{app.StatusPending, app.StatusActive, app.StatusUnbound, app.StatusActive, app.StatusRebound} {
			b := mustCreate(t, db, &app.Binding{Number: fmt.Sprint("L", i), Status: st})
			ids = append(ids, b.ID)
		}
		for _, tc := range []struct {
			name string
			f    app.BindingFilter
			want []int64
		}{
			{"All", app.BindingFilter{}, ids},
			{"Active", app.BindingFilter{Status: app.StatusActive}, []int64{ids[1], ids[3]}},
			{"Page", app.BindingFilter{Offset: 1, Limit: 2}, ids[1:3]},
			{"OffsetOnly", app.BindingFilter{Offset: 3}, ids[3:]},
			{"StatusPage", app.BindingFilter{Status: app.StatusActive, Offset: 1, Limit: 5}, []int64{ids[3]}},
			{"Nothing", app.BindingFilter{Status: app.StatusUnbound, Offset: 1}, []int64{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := db.FindBindings(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				gotIDs := []int64{}
				for _, b := range got {
					gotIDs = append(gotIDs, b.ID)
				}
				wantEqual(t, "ids", gotIDs, tc.want)
			})
		}
		_, err := db.FindBindings(ctx, app.BindingFilter{Status: "bogus"})
		wantCode(t, err, app.EINVALID)
	})
}

func TestAppendEvent(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		b := mustCreate(t, db, newBinding("e1"))
		clk.Add(time.Minute)
		if err := db.AppendEvent(ctx, app.Event{BindingID: b.ID, Kind: app.EventWelcomeSent, Actor: app.ActorSystem}); err != nil {
			t.Fatal(err)
		}
		// Not tied to a binding.
		if err := db.AppendEvent(ctx, app.Event{Kind: app.EventBindIntent, Actor: app.ActorMember, Number: "e2"}); err != nil {
			t.Fatal(err)
		}
		err := db.AppendEvent(ctx, app.Event{BindingID: 1 << 40, Kind: "x"})
		wantCode(t, err, app.ENOTFOUND)

		evs, err := db.FindEvents(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || evs[0].Kind != app.EventBound || evs[1].Kind != app.EventWelcomeSent {
			t.Fatalf("events = %+v", evs)
		}
		if !evs[1].CreatedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("event time = %v", evs[1].CreatedAt)
		}
		evs, err = db.FindEvents(ctx, 1<<40)
		if err != nil || len(evs) != 0 {
			t.Fatalf("events of no binding = %v, %v", evs, err)
		}
	})
}
