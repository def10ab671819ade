package browsertest

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// axe-core comes from the npm registry, pinned to one exact version with its integrity hash in
// axe/package-lock.json and installed by .ci/run with `npm ci --prefix browsertest/axe`. It is
// not vendored: the lock file checks what npm delivers, an upgrade is a one-line diff, and the
// repository carries no 650 KB minified third-party script. The Go code only reads the file.
const axeDefault = "axe/node_modules/axe-core/axe.min.js"

var (
	axeMu  sync.Mutex
	axeSrc = map[string]string{} // axe.min.js by path, read once
)

// axeSource returns axe-core's script: $WECAMPUS_AXE (.ci/run sets it), else axeDefault; "" when
// it is not installed outside CI (the audits are then skipped with a note). Under CI=true a
// missing axe-core fails the test.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("WECAMPUS_AXE")
	if path == "" {
		path = axeDefault
	}
	axeMu.Lock()
	defer axeMu.Unlock()
	if src, ok := axeSrc[path]; ok {
		return src
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("axe-core is not installed (%v): run npm ci --prefix browsertest/axe", err)
		}
		t.Logf("accessibility audit skipped: %v (npm ci --prefix browsertest/axe installs axe-core)", err)
		return ""
	}
	axeSrc[path] = string(b)
	return axeSrc[path]
}

// axeRun runs axe on the whole document, every rule axe has (WCAG 2.1 A/AA and best practices),
// and returns the violations by value. The injection goes through Runtime.evaluate, which the
// page's Content-Security-Policy (no scripts at all) does not govern, unlike a <script> tag.
const axeRun = `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
	id: v.id, impact: v.impact || "", help: v.help,
	nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary || ""}))
})))`

// runAxe injects axe-core (src) into the current page and returns its violations.
func (b *browser) runAxe(what, src string) []axeViolation {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[chromedp.Void](src)); err != nil {
		b.t.Fatalf("inject axe-core on %s: %v", what, err)
	}
	vs, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]axeViolation](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("run axe-core on %s: %v", what, err)
	}
	return vs
}

// targets lists the elements that fail v.
func (v *axeViolation) targets() []string {
	out := make([]string, 0, len(v.Nodes))
	for _, n := range v.Nodes {
		out = append(out, n.Target)
	}
	return out
}

// axeViolation is one failed rule on a page and the elements that fail it.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"` // minor | moderate | serious | critical
	Help   string `json:"help"`
	Nodes  []struct {
		Target  string `json:"target"`
		Summary string `json:"summary"`
	} `json:"nodes"`
}

// axePage is the audit of one member page the test visited.
type axePage struct {
	Step       int
	Path       string
	Title      string
	Violations []axeViolation
}

// counts are the violations (rules) by impact.
func (p *axePage) counts() map[string]int {
	m := map[string]int{}
	for _, v := range p.Violations {
		m[v.Impact]++
	}
	return m
}

// blocking are the serious and critical violations: the ones a member page may not have.
func (p *axePage) blocking() []axeViolation {
	var out []axeViolation
	for _, v := range p.Violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			out = append(out, v)
		}
	}
	return out
}

// memberPage reports whether the browser is on a member page of the service: not the demo
// console nor the CAS and WeCom simulators (not what members see in production), nor the
// helpdesk console (admin_test.go checks its screens itself).
func (b *browser) memberPage() (string, bool) {
	u, err := url.Parse(b.location())
	if err != nil || !strings.HasPrefix(u.String(), b.d.base) {
		return "", false
	}
	for _, p := range []string{"/demo", "/admin"} {
		if u.Path == p || strings.HasPrefix(u.Path, p+"/") {
			return u.Path, false
		}
	}
	return u.Path, true
}

// audit runs axe-core on the current page when it is a member page, and checks what axe does not
// check itself: one <main>, one <h1>, a viewport that allows zooming. A serious or critical
// violation fails the test (the test goes on, so that one run shows every page's violations).
func (b *browser) audit() {
	b.t.Helper()
	path, ok := b.memberPage()
	if !ok {
		return
	}
	src := axeSource(b.t)
	if src == "" {
		return
	}
	vs := b.runAxe(path, src)
	title, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.title`))
	p := &axePage{Step: len(b.audits) + 1, Path: path, Title: title, Violations: vs}
	b.audits = append(b.audits, p)
	for _, v := range p.blocking() {
		var nodes []string
		for _, n := range v.Nodes {
			nodes = append(nodes, n.Target+": "+strings.ReplaceAll(n.Summary, "\n", " "))
		}
		b.t.Errorf("axe: %s (%s): %s %s: %s\n  %s", path, title, v.Impact, v.ID, v.Help, strings.Join(nodes, "\n  "))
	}
	structure, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]int](`[
		document.querySelectorAll("main").length,
		document.querySelectorAll("h1").length,
		/maximum-scale|user-scalable\s*=\s*(no|0)/i.test((document.querySelector('meta[name="viewport"]') || {}).content || "") ? 1 : 0]`))
	if err != nil {
		b.t.Fatalf("read the structure of %s: %v", path, err)
	}
	if structure[0] != 1 || structure[1] != 1 || structure[2] != 0 {
		b.t.Errorf("%s (%s): %d <main>, %d <h1> (want one each), zoom blocked: %v", path, title, structure[0], structure[1], structure[2] == 1)
	}
}

// axeReport logs the violation counts of every audited page and writes them, with the failing
// elements, to <screenshots>/<prefix>-axe.txt (prefix: the test's name, and the viewport of a
// second tab).
func (b *browser) axeReport() {
	if len(b.audits) == 0 {
		return
	}
	var sb strings.Builder
	failed := 0
	for _, p := range b.audits {
		c := p.counts()
		if len(p.blocking()) > 0 {
			failed++
		}
		fmt.Fprintf(&sb, "%02d %-22s critical %d, serious %d, moderate %d, minor %d  %s\n",
			p.Step, p.Path, c["critical"], c["serious"], c["moderate"], c["minor"], p.Title)
		for _, v := range p.Violations {
			targets := v.targets()
			sort.Strings(targets)
			fmt.Fprintf(&sb, "     %s %s (%d): %s\n", v.Impact, v.ID, len(v.Nodes), strings.Join(targets, ", "))
		}
	}
	summary := fmt.Sprintf("axe-core: %d member pages audited, %d with serious or critical violations", len(b.audits), failed)
	b.t.Logf("%s\n%s", summary, sb.String())
	path := filepath.Join(b.dir, b.prefix+"-axe.txt")
	if err := os.WriteFile(path, []byte(summary+"\n"+sb.String()), 0o644); err != nil {
		b.t.Errorf("write %s: %v", path, err)
	}
}
