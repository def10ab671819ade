package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/wecampus/wecampus/app"
)

// demoPassword is the CAS password of every test identity of the demo.
const demoPassword = "demo123"

// The binary, built once for the run, the first time a test needs it.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds the wecampus binary (`go build` of the repository root) once.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "wecampus-browsertest-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "wecampus")
		if out, err := exec.Command("go", "build", "-o", binPath, "..").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// syncBuffer collects a subprocess's output safely.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// demo is a running `wecampus demo`.
type demo struct {
	base    string // http://127.0.0.1:port
	dbPath  string // its SQLite database, from the banner
	cfgPath string // a config for the CLI on that database
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	stdout  syncBuffer
	stderr  syncBuffer
}

var (
	bannerURL = regexp.MustCompile(`(http://\S+)/demo\n`)
	bannerDB  = regexp.MustCompile(`(/\S+demo\.db)`)
)

// runDemo starts `wecampus demo` on a free loopback port and waits until it answers; it stops
// with the test, and must stop cleanly.
func runDemo(t *testing.T) *demo {
	t.Helper()
	d := &demo{done: make(chan struct{})}
	d.cmd = exec.Command(binary(t), "--config", "", "demo", "--addr", "127.0.0.1:0")
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.exitErr = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("demo: %v", err)
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", d.stderr.String())
		}
	})
	if err := d.waitReady(); err != nil {
		t.Fatal(err)
	}
	d.cfgPath = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(d.cfgPath, []byte(d.cliConfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// waitReady reads the base URL and the database from the banner, then polls /healthz.
func (d *demo) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("demo exited early (%v):\n%s\n%s", d.exitErr, d.stdout.String(), d.stderr.String())
		default:
		}
		banner := d.stdout.String()
		if m := bannerURL.FindStringSubmatch(banner); m != nil && d.base == "" {
			d.base, d.dbPath = m[1], bannerDB.FindString(banner)
		}
		if d.base != "" {
			if resp, err := http.Get(d.base + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("demo not ready after 60s:\n%s\n%s", d.stdout.String(), d.stderr.String())
}

// stop interrupts the demo as Ctrl+C does and waits for its exit, which must be clean.
func (d *demo) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return errors.New("did not stop within 20s of SIGINT")
	}
	if d.exitErr != nil {
		return fmt.Errorf("exit: %v", d.exitErr)
	}
	return nil
}

// cliConfig is a config for `wecampus binding get` on the demo's database; the other values
// only have to pass validation.
func (d *demo) cliConfig() string {
	return fmt.Sprintf(`server:
  base_url: %q
  session_secret: "browsertest-cli-0123456789-0123456789"
database: { driver: "sqlite", dsn: %q }
wecom:
  corp_id: "wwbrowsertest"
  agent_id: 1000002
  app_secret: "unused"
  contacts_secret: "unused"
  callback_token: "unused"
  callback_aes_key: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
cas: { base_url: %q }
identity: { rules: [ { type: "student", department: 2 } ] }
sms: { provider: "log" }
`, d.base, d.dbPath, d.base+"/demo/cas")
}

// bindingJSON is what `binding get --json` prints.
type bindingJSON struct {
	Number string     `json:"number"`
	UserID string     `json:"userid"`
	Mobile string     `json:"mobile"`
	Status app.Status `json:"status"`
}

// binding reads the binding of number with the CLI, from the demo's database.
func (d *demo) binding(t *testing.T, number string) *bindingJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "--config", d.cfgPath, "binding", "get", number, "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("binding get %s: %v\n%s", number, err, stderr.String())
	}
	var b bindingJSON
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatalf("binding get %s --json: %v\n%s", number, err, out)
	}
	return &b
}

// console fetches the demo console and parses it.
func (d *demo) console(t *testing.T) *html.Node {
	t.Helper()
	resp, err := http.Get(d.base + "/demo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /demo: %d", resp.StatusCode)
	}
	doc, err := html.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// smsCode is the last code sent to mobile, as the console's SMS table shows it (mobiles masked).
func (d *demo) smsCode(t *testing.T, mobile string) string {
	t.Helper()
	for _, row := range rows(find(d.console(t), "section", "id", "sms")) {
		if len(row) >= 3 && row[0] == app.MaskMobile(mobile) {
			return row[2]
		}
	}
	return ""
}

// welcomes counts the welcome messages the console shows sent to userID.
func (d *demo) welcomes(t *testing.T, userID string) int {
	t.Helper()
	n := 0
	for _, li := range all(find(d.console(t), "section", "id", "messages"), "li") {
		text := textOf(li)
		if strings.Contains(text, "→ "+userID) && strings.Contains(text, "欢迎加入") {
			n++
		}
	}
	return n
}

// waitDelivered waits until the console shows a change_contact callback about userID answered
// 200.
func (d *demo) waitDelivered(t *testing.T, userID string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, row := range rows(find(d.console(t), "section", "id", "callbacks")) {
			if len(row) >= 5 && strings.HasPrefix(row[2], "change_contact") && row[3] == userID && row[4] == "200" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no change_contact callback about %s was delivered within %s", userID, timeout)
}

var memberFact = regexp.MustCompile(`企业微信:(\S+)`)

// member is the WeCom status the console shows for the identity number (its userid is the
// number): "已加入", "已邀请,未加入", ...; "" when WeCom has no such member.
func (d *demo) member(t *testing.T, number string) string {
	t.Helper()
	person := find(d.console(t), "div", "data-number", number)
	if person == nil {
		t.Fatalf("the console has no identity %s", number)
	}
	if m := memberFact.FindStringSubmatch(textOf(person)); m != nil {
		return m[1]
	}
	return ""
}

// find returns the first element tag with attribute key=val under n (nil if none).
func find(n *html.Node, tag, key, val string) *html.Node {
	if n == nil {
		return nil
	}
	if n.Type == html.ElementNode && n.Data == tag {
		for _, a := range n.Attr {
			if a.Key == key && a.Val == val {
				return n
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, tag, key, val); f != nil {
			return f
		}
	}
	return nil
}

// all returns every element tag under n.
func all(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	if n == nil {
		return nil
	}
	if n.Type == html.ElementNode && n.Data == tag {
		out = append(out, n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, all(c, tag)...)
	}
	return out
}

// rows returns the text of the cells of every table row under n.
func rows(n *html.Node) [][]string {
	var out [][]string
	for _, tr := range all(n, "tr") {
		var cells []string
		for _, td := range all(tr, "td") {
			cells = append(cells, strings.TrimSpace(textOf(td)))
		}
		out = append(out, cells)
	}
	return out
}

// textOf is the text inside n.
func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// effects is what the service did that a reload or Back must not do again.
type effects struct {
	Posts int // POST requests the service answered (wecampus_http_requests_total)
	SMS   int // SMS codes sent (the console's counts)
	WeCom int // WeCom API calls but gettoken (the console's counts)
}

var postMetric = regexp.MustCompile(`(?m)^wecampus_http_requests_total\{[^}]*method="POST"[^}]*\} ([0-9]+)$`)

// effects reads the counters of what the service did so far: POSTs from /metrics, SMS codes and
// WeCom calls from the console.
func (d *demo) effects(t *testing.T) effects {
	t.Helper()
	var e effects
	resp, err := http.Get(d.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	for _, m := range postMetric.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[1])
		e.Posts += n
	}
	doc := d.console(t)
	for _, row := range rows(find(doc, "section", "id", "sms")) {
		if len(row) >= 5 {
			n, _ := strconv.Atoi(row[4])
			e.SMS += n
		}
	}
	for _, row := range rows(find(doc, "section", "id", "wecom-calls")) {
		if len(row) >= 2 && row[0] != "gettoken" {
			n, _ := strconv.Atoi(row[1])
			e.WeCom += n
		}
	}
	return e
}
