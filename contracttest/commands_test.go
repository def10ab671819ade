package contracttest

import (
	"encoding/csv"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// CONTRACT §1: the binary's commands, their output and exit codes, and serve's graceful stop.

func TestContractCLI(t *testing.T) {
	w := ctWorldShared(t)
	p := w.newPerson("褚一一", "student")
	w.client(t).bind(p)

	b := w.binding(t, p.number)
	if b == nil || b.Number != p.number || b.Status != "pending" {
		t.Fatalf("binding get: %+v", b)
	}
	if r := w.cli(t, nil, "binding", "get", "99999999999", "--json"); r.code != 3 {
		t.Errorf("binding get unknown: exit %d, want 3", r.code)
	}
	if r := w.cli(t, nil, "binding", "get", "99999999999"); r.code != 3 {
		t.Errorf("binding get unknown (text): exit %d, want 3", r.code)
	}
	if r := w.cli(t, nil, "binding", "get", p.number); r.code != 0 || !strings.Contains(r.stdout, p.number) {
		t.Errorf("binding get (text): exit %d\n%s", r.code, r.stdout)
	}

	r := w.cli(t, nil, "binding", "list", "--csv")
	if r.code != 0 {
		t.Fatalf("binding list --csv: exit %d %s", r.code, r.stderr)
	}
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("binding list --csv: %v\n%s", err, r.stdout)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, f := range []string{"number", "userid", "mobile", "name", "type", "department", "status", "created_at", "updated_at"} {
		if _, ok := col[f]; !ok {
			t.Errorf("CSV header %v lacks %q", rows[0], f)
		}
	}
	found := false
	for _, row := range rows[1:] {
		if len(row) != len(rows[0]) {
			t.Fatalf("CSV row %v has %d fields, header %d", row, len(row), len(rows[0]))
		}
		if row[col["number"]] == p.number {
			found = true
			if _, err := time.Parse(time.RFC3339, row[col["created_at"]]); err != nil {
				t.Errorf("CSV created_at %q: %v", row[col["created_at"]], err)
			}
		}
	}
	if !found {
		t.Errorf("binding list --csv lacks %s", p.number)
	}

	r = w.cli(t, nil, "binding", "list", "--status", "pending", "--csv")
	rows, err = csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if r.code != 0 || err != nil || len(rows) < 2 {
		t.Fatalf("binding list --status pending --csv: exit %d %v\n%s", r.code, err, r.stdout)
	}
	for _, row := range rows[1:] {
		if row[col["status"]] != "pending" {
			t.Errorf("--status pending lists %v", row)
		}
	}
	if r := w.cli(t, nil, "binding", "list", "--status", "pending"); r.code != 0 || !strings.Contains(r.stdout, p.number) {
		t.Errorf("binding list --status pending: exit %d\n%s", r.code, r.stdout)
	}
	if r := w.cli(t, nil, "binding", "list", "--status", "bogus"); r.code == 0 {
		t.Errorf("binding list --status bogus: exit 0")
	}
	if r := w.cli(t, nil, "binding", "list"); r.code != 0 {
		t.Errorf("binding list: exit %d", r.code)
	}

	// config check: all good, one line per check.
	r = w.cli(t, nil, "config", "check")
	if r.code != 0 {
		t.Fatalf("config check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 5 {
		t.Errorf("config check prints %d lines, want one per check (config, database, two gettoken, CAS):\n%s", len(lines), r.stdout)
	}

	// migrate on the live database.
	if r := w.cli(t, nil, "migrate"); r.code != 0 {
		t.Errorf("migrate: exit %d\n%s", r.code, r.stderr)
	}
}

// TestContractServeStop runs a second serve whose address comes from WECAMPUS_SERVER_ADDR and
// stops it with SIGTERM while a request waits on a slow CAS: the request completes, exit 0.
func TestContractServeStop(t *testing.T) {
	ctBinary(t)
	w, err := newCtWorld(t, ctWorldOptions{casLatency: 1500 * time.Millisecond, envAddr: true, noContacts: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if err := w.waitReady(); err != nil {
		t.Fatal(err) // the env address is the one listening
	}
	// A fresh service: no drift.
	if r := w.cli(t, nil, "reconcile"); r.code != 0 {
		t.Errorf("reconcile without bindings or members: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Without contacts keys, /wecom/contacts is 404.
	if st, _, _ := ctGET(t, w.base+"/wecom/contacts?msg_signature=a&timestamp=1&nonce=b&echostr=c"); st != http.StatusNotFound {
		t.Errorf("GET /wecom/contacts without contacts keys: %d, want 404", st)
	}
	if st, _ := w.rawPost(t, "/wecom/contacts?msg_signature=a&timestamp=1&nonce=b", []byte("<xml/>")); st != http.StatusNotFound {
		t.Errorf("POST /wecom/contacts without contacts keys: %d, want 404", st)
	}
	c := w.client(t)
	start := c.do(http.MethodGet, "/bind/login", nil)
	ctWant(t, start, http.StatusFound)
	p := w.newPerson("卫十二", "student")
	ticket := w.cas.IssueTicket(p.number, w.base+"/bind/cas")
	type answer struct {
		r   *ctResp
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, w.base+"/bind/cas?ticket="+url.QueryEscape(ticket), nil)
		resp, err := c.hc.Do(req)
		if err != nil {
			ch <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- answer{r: &ctResp{status: resp.StatusCode, header: resp.Header, body: string(b)}, err: err}
	}()
	time.Sleep(400 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- w.stop() }()
	a := <-ch
	if a.err != nil {
		t.Fatalf("in-flight request failed during shutdown: %v", a.err)
	}
	// §7: the ticket validated, 303 to the mobile form.
	if loc, _ := url.Parse(a.r.header.Get("Location")); a.r.status != http.StatusSeeOther || loc == nil || loc.Path != "/bind/mobile" {
		t.Errorf("in-flight request: %d %q\n%s", a.r.status, a.r.header.Get("Location"), a.r.body)
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve after SIGTERM: %v\n%s", err, w.stderr.String())
	}
	if w.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("serve exit code %d", w.cmd.ProcessState.ExitCode())
	}
}
