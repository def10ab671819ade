package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestOffboardCommand: a graduates' CSV (BOM, CRLF, comments, repeats, unknown numbers) through
// the CLI: a dry run, a run whose first batch WeCom refuses (exit 4, failures listed), and reruns
// that finish the job and then have nothing left to do.
func TestOffboardCommand(t *testing.T) {
	sim := newSimulated(t)
	path := sim.path(t)
	if r := runCLI(t, "--config", path, "migrate"); r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	ctx := context.Background()
	db := openTestStore(t, path)
	var rows strings.Builder
	rows.WriteString("\ufeffname,number\r\n# 2025届毕业生\r\n\r\n")
	for i := range 210 {
		n := fmt.Sprintf("2021%06d", i)
		b := &app.Binding{Number: n, UserID: n, Mobile: fmt.Sprintf("138%08d", i), Name: "学生", Type: "student", Department: 2, Status: app.StatusActive}
		if err := db.CreateBinding(ctx, b, app.Event{Kind: app.EventBound, Actor: app.ActorSystem}); err != nil {
			t.Fatal(err)
		}
		if i != 205 { // 205's member was already deleted in the WeCom console
			if err := sim.wecom.AddMember(wecomtest.Member{UserID: n, Name: b.Name, Mobile: b.Mobile, Department: []int64{2}}); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(&rows, "学生,%s\r\n", n)
	}
	rows.WriteString("某人,2021000003\r\n老师,T9001\r\n,T9002\r\n访客,\"T9003\"\r\n")
	file := filepath.Join(t.TempDir(), "graduates.csv")
	if err := os.WriteFile(file, []byte(rows.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, "--config", path, "offboard", "--file", file, "--dry-run")
	if r.code != 0 || lastLine(r.stdout) != "offboard: 210 unbound, 3 skipped, 0 failed (dry run: nothing changed)" ||
		!strings.Contains(r.stdout, "skipped T9002: no live binding\n") || !strings.Contains(r.stdout, "unbind  2021000009: would delete") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := sim.wecom.CallCount("user/batchdelete"); n != 0 {
		t.Fatalf("dry run: %d user/batchdelete calls", n)
	}

	sim.wecom.Inject("user/batchdelete", 1, wecomtest.Fault{ErrCode: -1})
	r = runCLI(t, "--config", path, "offboard", "--file", file, "--reason", "2025届毕业")
	if r.code != exitOffboardFailed || lastLine(r.stdout) != "offboard: 10 unbound, 3 skipped, 200 failed" ||
		!strings.Contains(r.stdout, "failed  2021000000 userid=2021000000: WeCom member not deleted: wecom: user/batchdelete: errcode -1: system busy") ||
		!strings.Contains(r.stderr, "offboard: 213/213 numbers done\n") {
		t.Fatalf("run with a refused batch: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stdout, "\nfailed  "); n != 199 { // the first one starts the output
		t.Errorf("%d failure lines", n+1)
	}
	for _, n := range []string{"2021000205", "2021000209"} {
		if b, _ := db.FindLatestBinding(ctx, n); b.Status != app.StatusUnbound || b.Reason != "2025届毕业" {
			t.Fatalf("%s: %s %q", n, b.Status, b.Reason)
		}
	}

	r = runCLI(t, "--config", path, "offboard", "--file", file)
	if r.code != 0 || lastLine(r.stdout) != "offboard: 200 unbound, 13 skipped, 0 failed" {
		t.Fatalf("rerun: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := db.FindLatestBinding(ctx, "2021000000"); b.Status != app.StatusUnbound || b.Reason != app.DefaultOffboardReason {
		t.Fatalf("after the rerun: %s %q", b.Status, b.Reason)
	}
	r = runCLI(t, "--config", path, "offboard", "--file", file)
	if r.code != 0 || lastLine(r.stdout) != "offboard: 0 unbound, 213 skipped, 0 failed" {
		t.Fatalf("second rerun: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := len(sim.wecom.Members()); n != 0 {
		t.Fatalf("%d members left in WeCom", n)
	}
}

// TestOffboardCommandUsage: a missing or unreadable file and a bad reason are usage errors.
func TestOffboardCommandUsage(t *testing.T) {
	sim := newSimulated(t)
	path := sim.path(t)
	dir := t.TempDir()
	twoCols := filepath.Join(dir, "two.csv")
	one := filepath.Join(dir, "one.txt")
	for f, body := range map[string]string{twoCols: "2021000001,张三\n", one: "2021000001\n"} {
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"offboard"}, "offboard needs --file PATH"},
		{[]string{"offboard", "--file", filepath.Join(dir, "nope.csv")}, "no such file"},
		{[]string{"offboard", "--file", twoCols}, "line 1: several columns"},
		{[]string{"offboard", "--file", one, "--reason", strings.Repeat("长", 201)}, "--reason: "},
	} {
		r := runCLI(t, append([]string{"--config", path}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s%s", tc.args, r.code, exitUsage, tc.want, r.stdout, r.stderr)
		}
	}
}

func TestReadNumbers(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"lines", "2021001\n2021002\n", []string{"2021001", "2021002"}, ""},
		{"crlf, bom, blanks, comments", "\ufeff# list\r\n2021001\r\n\r\n  2021002  \r\n#2021003\r\n  # 2021004\r\n", []string{"2021001", "2021002"}, ""},
		{"repeats kept", "1\n1\n", []string{"1", "1"}, ""},
		{"trailing comma", "2021001,\n", []string{"2021001"}, ""},
		{"csv header", "Number,name\n2021001,张三\n\"2021002\",\"李, 四\"\n,无号\n", []string{"2021001", "2021002"}, ""},
		{"csv header later column", "name, number ,type\n张三,2021001,student\n", []string{"2021001"}, ""},
		{"csv short row", "name,number\n张三\n", nil, "line 2: no \"number\" column"},
		{"two columns, no header", "2021001,张三\n", nil, "line 1: several columns"},
		{"space inside", "2021 001\n", nil, "line 1: \"2021 001\" is not a number"},
		{"empty", "\ufeff# nothing\n\n", nil, "no numbers"},
	} {
		got, err := readNumbers(strings.NewReader(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
