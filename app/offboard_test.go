package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/store/storetest"
	"github.com/wecampus/wecampus/wecom"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// offboardStores runs fn on SQLite and, when TEST_MYSQL_DSN is set, on a fresh MariaDB database.
func offboardStores(t *testing.T, fn func(t *testing.T, svc *app.Service, sim *wecomtest.Server)) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			svc, sim := offboardService(t, kind)
			fn(t, svc, sim)
		})
	}
}

// offboardService is an app.Service over a fresh store of the given driver and the wecom client
// pointed at a fresh simulator.
func offboardService(t *testing.T, driver string) (*app.Service, *wecomtest.Server) {
	t.Helper()
	db := storetest.Open(t, driver, nil)
	sim := wecomtest.New("wwoffboard0000001")
	t.Cleanup(sim.Close)
	wc, err := wecom.New(wecom.Config{CorpID: sim.CorpID(), AppSecret: sim.AppSecret(), ContactsSecret: sim.ContactsSecret(),
		AgentID: sim.AgentID(), APIBase: sim.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &app.Service{Store: db, WeCom: wc, BaseURL: "https://x.edu.cn", Log: slog.New(slog.DiscardHandler)}, sim
}

// seedOffboard creates n live bindings (every third pending) with their WeCom members, numbered
// 2021000000+i, and returns their numbers.
func seedOffboard(t *testing.T, svc *app.Service, sim *wecomtest.Server, n int) []string {
	t.Helper()
	ctx := context.Background()
	numbers := make([]string, n)
	err := svc.Store.Tx(ctx, func(tx app.Store) error {
		for i := range n {
			num := fmt.Sprintf("2021%06d", i)
			numbers[i] = num
			st, mst := app.StatusActive, 1
			if i%3 == 0 {
				st, mst = app.StatusPending, 4
			}
			mobile := fmt.Sprintf("138%08d", i)
			b := &app.Binding{Number: num, UserID: num, Mobile: mobile, Name: "学生" + num, Type: "student", Department: 2, Status: st}
			if err := tx.CreateBinding(ctx, b, app.Event{Kind: app.EventBound, Actor: app.ActorSystem}); err != nil {
				return err
			}
			if err := sim.AddMember(wecomtest.Member{UserID: num, Name: b.Name, Mobile: mobile, Department: []int64{2}, Status: mst}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return numbers
}

func wantCounts(t *testing.T, what string, rep *app.OffboardReport, unbound, skipped, failed int) {
	t.Helper()
	if rep.Unbound != unbound || rep.Skipped != skipped || rep.Failed != failed {
		t.Fatalf("%s: %s; want %d unbound, %d skipped, %d failed", what, rep.Summary(), unbound, skipped, failed)
	}
}

func lastEvent(t *testing.T, svc *app.Service, number string) (*app.Binding, *app.Event) {
	t.Helper()
	ctx := context.Background()
	b, err := svc.Store.FindLatestBinding(ctx, number)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := svc.Store.FindEvents(ctx, b.ID)
	if err != nil || len(evs) == 0 {
		t.Fatalf("events of %s: %v %v", number, evs, err)
	}
	return b, evs[len(evs)-1]
}

// TestOffboard: 450 graduates in 3 batches (200/200/50), with numbers that have no binding,
// members already deleted in WeCom, a WeCom error on the second batch, and reruns.
func TestOffboard(t *testing.T) {
	offboardStores(t, func(t *testing.T, svc *app.Service, sim *wecomtest.Server) {
		ctx := context.Background()
		live := seedOffboard(t, svc, sim, 450)
		gone := []int{7, 150, 420} // deleted in the WeCom console, callback lost: batches 1, 1 and 3
		for _, i := range gone {
			if err := sim.RemoveMember(live[i]); err != nil {
				t.Fatal(err)
			}
		}
		unknown := []string{"2099000001", "2099000002", "2099000003", "2099000004", "2099000005",
			"2099000006", "2099000007", "2099000008", "2099000009", "2099000010"}
		// The unknown numbers come first, so the second progress call falls between batches 1 and 2.
		numbers := append(append(append([]string{}, unknown...), live...), " "+live[0]+" ", live[1], unknown[0], "")

		dry, err := svc.Offboard(ctx, numbers, app.OffboardOptions{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		wantCounts(t, "dry run", dry, 450, 10, 0)
		if !strings.HasSuffix(dry.Summary(), "(dry run: nothing changed)") || len(dry.Results) != 460 {
			t.Fatalf("dry run: %q, %d results", dry.Summary(), len(dry.Results))
		}
		if n := len(sim.Calls()); n != 0 {
			t.Fatalf("dry run called WeCom %d times", n)
		}
		if b, ev := lastEvent(t, svc, live[0]); b.Status != app.StatusPending || ev.Kind != app.EventBound {
			t.Fatalf("dry run changed %s: %s, last event %s", b.Number, b.Status, ev.Kind)
		}

		// Run 1: the first call of batch 2 answers -1 (system busy).
		var progress []string
		injected := false
		rep, err := svc.Offboard(ctx, numbers, app.OffboardOptions{Reason: "2025届毕业", Progress: func(done, total int) {
			progress = append(progress, fmt.Sprintf("%d/%d", done, total))
			if done >= 200 && !injected {
				injected = true
				sim.Inject("user/batchdelete", 1, wecomtest.Fault{ErrCode: -1})
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		wantCounts(t, "run 1", rep, 250, 10, 200)
		if got := strings.Join(progress, " "); got != "10/460 210/460 410/460 460/460" {
			t.Errorf("progress = %s", got)
		}
		for i, res := range rep.Results {
			want := app.OffboardUnbound
			switch {
			case i < 10:
				want = app.OffboardSkipped
			case i >= 210 && i < 410:
				want = app.OffboardFailed
			}
			if res.Outcome != want || res.Number != numbers[i] {
				t.Fatalf("result %d = %+v, want %s %s", i, res, numbers[i], want)
			}
		}
		if f := rep.Results[300]; !strings.Contains(f.Detail, "errcode -1") || f.UserID != f.Number {
			t.Fatalf("failed result: %+v", f)
		}
		checkOffboarded(t, svc, sim, live[0], "2025届毕业", "deleted")
		checkOffboarded(t, svc, sim, live[7], "2025届毕业", "already gone")
		checkOffboarded(t, svc, sim, live[420], "2025届毕业", "already gone")
		// A failed binding is still live, its member still in WeCom, and its trail says offboarding began.
		if b, ev := lastEvent(t, svc, live[250]); !b.Status.Live() || ev.Kind != app.EventOffboarding || ev.Actor != app.ActorAdmin {
			t.Fatalf("failed binding %s: %s, last event %+v", b.Number, b.Status, ev)
		}
		if _, ok := sim.Member(live[250]); !ok {
			t.Fatal("the member of a failed batch was deleted")
		}

		// Run 2 finishes batch 2 (with its member gone from WeCom); run 3 has nothing left to do.
		rep, err = svc.Offboard(ctx, numbers, app.OffboardOptions{Reason: "2025届毕业"})
		if err != nil {
			t.Fatal(err)
		}
		wantCounts(t, "run 2", rep, 200, 260, 0)
		checkOffboarded(t, svc, sim, live[250], "2025届毕业", "deleted")
		before := len(sim.Calls())
		rep, err = svc.Offboard(ctx, numbers, app.OffboardOptions{Reason: "2025届毕业"})
		if err != nil {
			t.Fatal(err)
		}
		wantCounts(t, "run 3", rep, 0, 460, 0)
		if n := len(sim.Calls()) - before; n != 0 {
			t.Fatalf("a rerun with nothing to do called WeCom %d times", n)
		}
		if n := len(sim.Members()); n != 0 {
			t.Fatalf("%d members left in WeCom", n)
		}
	})
}

// checkOffboarded asserts that number's binding is unbound with reason, its member gone, and its
// last event an admin unbind whose detail says fate ("deleted" or "already gone").
func checkOffboarded(t *testing.T, svc *app.Service, sim *wecomtest.Server, number, reason, fate string) {
	t.Helper()
	b, ev := lastEvent(t, svc, number)
	if b.Status != app.StatusUnbound || b.Reason != reason {
		t.Fatalf("%s: status %s, reason %q", number, b.Status, b.Reason)
	}
	if ev.Kind != app.EventUnbound || ev.Actor != app.ActorAdmin || !strings.Contains(ev.Detail, reason) || !strings.HasSuffix(ev.Detail, fate) {
		t.Fatalf("%s: last event %+v", number, ev)
	}
	if _, ok := sim.Member(number); ok {
		t.Fatalf("%s: member still in WeCom", number)
	}
}

// TestOffboardCulprits: a batch refused for some of its userids is cut down to the culprits.
// Members gone before the run are told apart by WeCom's member list; one deleted after the list
// was read, and every culprit when the list cannot be read, are found by bisection. Members gone
// are unbound, a userid WeCom rejects stays failed, the rest are deleted.
func TestOffboardCulprits(t *testing.T) {
	ctx := context.Background()
	svc, sim := offboardService(t, store.DriverSQLite)
	live := seedOffboard(t, svc, sim, 400)
	if err := sim.RemoveMember(live[123]); err != nil {
		t.Fatal(err)
	}
	rep, err := svc.Offboard(ctx, live, app.OffboardOptions{Progress: func(done, _ int) {
		if done == 200 { // between the batches, after the member list was read
			if err := sim.RemoveMember(live[321]); err != nil {
				t.Error(err)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, "gone before and during the run", rep, 400, 0, 0)
	deletes, lists := sim.CallCount("user/batchdelete"), sim.CallCount("user/list_id")
	t.Logf("400 members, 1 gone before the run, 1 gone during it: %d user/batchdelete and %d user/list_id calls", deletes, lists)
	if lists != 1 || deletes > 2+17 {
		t.Errorf("%d user/batchdelete and %d user/list_id calls", deletes, lists)
	}
	checkOffboarded(t, svc, sim, live[123], app.DefaultOffboardReason, "already gone")
	checkOffboarded(t, svc, sim, live[321], app.DefaultOffboardReason, "already gone")
	checkOffboarded(t, svc, sim, live[124], app.DefaultOffboardReason, "deleted")

	// Without the member list: a userid WeCom calls invalid (40003) fails alone, a member gone is
	// unbound, their batch-mates are deleted.
	bad := &app.Binding{Number: "T0001", UserID: "bad userid!", Mobile: "13900000001", Name: "x", Type: "staff", Department: 3, Status: app.StatusActive}
	if err := svc.Store.CreateBinding(ctx, bad, app.Event{Kind: app.EventBound, Actor: app.ActorSystem}); err != nil {
		t.Fatal(err)
	}
	more := seedMore(t, svc, sim, 5)
	if err := sim.RemoveMember(more[3]); err != nil {
		t.Fatal(err)
	}
	sim.Inject("user/list_id", 1, wecomtest.Fault{ErrCode: -1})
	rep, err = svc.Offboard(ctx, append([]string{"T0001"}, more...), app.OffboardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, "no member list", rep, 5, 0, 1)
	if f := rep.Results[0]; f.Outcome != app.OffboardFailed || !strings.Contains(f.Detail, "errcode 40003") {
		t.Fatalf("invalid userid: %+v", f)
	}
	checkOffboarded(t, svc, sim, more[3], app.DefaultOffboardReason, "already gone")
	checkOffboarded(t, svc, sim, more[4], app.DefaultOffboardReason, "deleted")
}

// seedMore adds n more live bindings with members, numbered S000..., and returns their numbers.
func seedMore(t *testing.T, svc *app.Service, sim *wecomtest.Server, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		num := fmt.Sprintf("S%03d", i)
		mobile := fmt.Sprintf("137%08d", i)
		b := &app.Binding{Number: num, UserID: num, Mobile: mobile, Name: "n", Type: "staff", Department: 3, Status: app.StatusActive}
		if err := svc.Store.CreateBinding(context.Background(), b, app.Event{Kind: app.EventBound, Actor: app.ActorSystem}); err != nil {
			t.Fatal(err)
		}
		if err := sim.AddMember(wecomtest.Member{UserID: num, Name: "n", Mobile: mobile, Department: []int64{3}}); err != nil {
			t.Fatal(err)
		}
		out = append(out, num)
	}
	return out
}

// TestOffboardUnknownOutcome is the crash between WeCom's deletion and the binding update: the
// batch is applied but its answer lost. The bindings stay live with an offboarding event (never
// without a trace), and the rerun converges: every member is found gone and unbound.
func TestOffboardUnknownOutcome(t *testing.T) {
	ctx := context.Background()
	svc, sim := offboardService(t, store.DriverSQLite)
	live := seedOffboard(t, svc, sim, 30)
	sim.Inject("user/batchdelete", 1, wecomtest.Fault{Reset: true})
	rep, err := svc.Offboard(ctx, live, app.OffboardOptions{Reason: "退学"})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, "lost answer", rep, 0, 0, 30)
	if !strings.Contains(rep.Results[0].Detail, "outcome unknown") {
		t.Fatalf("detail: %s", rep.Results[0].Detail)
	}
	if n := len(sim.Members()); n != 0 {
		t.Fatalf("the batch was not applied: %d members left", n)
	}
	for _, n := range live {
		if b, ev := lastEvent(t, svc, n); !b.Status.Live() || ev.Kind != app.EventOffboarding {
			t.Fatalf("%s: %s, last event %s: no trace", n, b.Status, ev.Kind)
		}
	}
	before := len(sim.Calls())
	rep, err = svc.Offboard(ctx, live, app.OffboardOptions{Reason: "退学"})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, "rerun", rep, 30, 0, 0)
	if n := len(sim.Calls()) - before; n != 2 {
		t.Errorf("rerun after a lost answer, 30 members all gone: %d WeCom calls, want 2 (batchdelete, list_id)", n)
	}
	for _, n := range live {
		checkOffboarded(t, svc, sim, n, "退学", "already gone")
	}
}

// callbackFirst is WeCom whose delete_user callbacks reach the service before the answer to
// user/batchdelete does.
type callbackFirst struct {
	app.WeCom
	svc *app.Service
}

func (w callbackFirst) DeleteUsers(ctx context.Context, userIDs ...string) error {
	if err := w.WeCom.DeleteUsers(ctx, userIDs...); err != nil {
		return err
	}
	for _, id := range userIDs[:2] {
		in := &app.Inbound{Channel: app.ChannelContacts, FromUser: "sys", CreateTime: time.Now().Unix(),
			MsgType: "event", Event: "change_contact", ChangeType: "delete_user", UserID: id}
		if _, err := w.svc.HandleInbound(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

// TestOffboardCallbackFirst: bindings the delete_user callback released first still end with
// the offboard reason and an admin event, and count as unbound.
func TestOffboardCallbackFirst(t *testing.T) {
	ctx := context.Background()
	svc, sim := offboardService(t, store.DriverSQLite)
	live := seedOffboard(t, svc, sim, 5)
	svc.WeCom = callbackFirst{WeCom: svc.WeCom, svc: svc}
	rep, err := svc.Offboard(ctx, live, app.OffboardOptions{Reason: "结业"})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, "callback first", rep, 5, 0, 0)
	if d := rep.Results[0].Detail; d != "deleted; released meanwhile" {
		t.Errorf("detail %q", d)
	}
	for _, n := range live {
		checkOffboarded(t, svc, sim, n, "结业", "")
	}
	b, _ := svc.Store.FindLatestBinding(ctx, live[0])
	evs, _ := svc.Store.FindEvents(ctx, b.ID)
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind+"/"+ev.Actor)
	}
	if got := strings.Join(kinds, " "); got != "bind.created/system bind.offboarding/admin bind.unbound/wecom bind.unbound/admin" {
		t.Errorf("trail: %s", got)
	}
}

// TestOffboardReason: the default reason, and a reason too long for the binding.
func TestOffboardReason(t *testing.T) {
	ctx := context.Background()
	svc, _ := offboardService(t, store.DriverSQLite)
	if _, err := svc.Offboard(ctx, []string{"1"}, app.OffboardOptions{Reason: strings.Repeat("长", 201)}); app.ErrorCode(err) != app.EINVALID {
		t.Fatalf("long reason: %v", err)
	}
	rep, err := svc.Offboard(ctx, nil, app.OffboardOptions{})
	if err != nil || rep.Summary() != "offboard: 0 unbound, 0 skipped, 0 failed" {
		t.Fatalf("empty list: %v %v", rep, err)
	}
}

// TestOffboardThroughput measures 450 numbers against the simulator (SQLite; MariaDB too when
// TEST_MYSQL_DSN is set): numbers per second and WeCom calls, with no member or 5 members already
// gone from WeCom, and with a WeCom-like latency of 100 ms per call.
func TestOffboardThroughput(t *testing.T) {
	for _, tc := range []struct {
		gone    int
		latency time.Duration
	}{{0, 0}, {5, 0}, {5, 100 * time.Millisecond}} {
		offboardStores(t, func(t *testing.T, svc *app.Service, sim *wecomtest.Server) {
			live := seedOffboard(t, svc, sim, 450)
			for i := range tc.gone {
				if err := sim.RemoveMember(live[i*97]); err != nil {
					t.Fatal(err)
				}
			}
			sim.SetLatency(tc.latency)
			before := len(sim.Calls())
			start := time.Now()
			rep, err := svc.Offboard(context.Background(), live, app.OffboardOptions{})
			if err != nil {
				t.Fatal(err)
			}
			d := time.Since(start)
			wantCounts(t, "throughput", rep, 450, 0, 0)
			count := map[string]int{}
			for _, c := range sim.Calls()[before:] {
				count[c.Endpoint]++
			}
			t.Logf("%s: 450 numbers, %d gone from WeCom, %v per WeCom call: %v, %.0f numbers/s; WeCom calls %v",
				strings.Split(t.Name(), "/")[1], tc.gone, tc.latency, d.Round(time.Millisecond), 450/d.Seconds(), count)
			if want := map[int]int{0: 3, 5: 5}[tc.gone]; count["user/batchdelete"] != want {
				t.Errorf("%d user/batchdelete calls, want %d", count["user/batchdelete"], want)
			}
		})
	}
}
