package contracttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ctBuild is the binary built once for the whole run (lazily, so that a run of a single test
// that needs no binary does not pay for it), and ctShared the service most contract tests share.
var (
	ctBuildOnce sync.Once
	ctBin       string
	ctBinDir    string
	ctBuildErr  error

	ctSharedOnce sync.Once
	ctShared     *ctWorld
	ctSharedErr  error
)

// TestMain runs the tests, then stops the shared service and checks everything it printed: no
// secret, no whole mobile, no SMS code.
func TestMain(m *testing.M) {
	code := m.Run()
	if ctShared != nil {
		_ = ctShared.stop()
		for _, problem := range ctLogProblems(ctShared) {
			fmt.Fprintln(os.Stderr, "--- FAIL: the shared service's output:", problem)
			code = 1
		}
		ctShared.close()
	}
	if ctBinDir != "" {
		os.RemoveAll(ctBinDir)
	}
	os.Exit(code)
}

// ctLogProblems lists what w's output must not hold but does.
func ctLogProblems(w *ctWorld) []string {
	var problems []string
	out := w.stdout.String() + w.stderr.String()
	for _, s := range w.secrets {
		if strings.Contains(out, s) {
			problems = append(problems, fmt.Sprintf("serve logs a secret (%.6s…)", s))
		}
	}
	for _, m := range w.sms.all() {
		if strings.Contains(out, m.Mobile) {
			problems = append(problems, "serve logs the whole mobile "+m.Mobile)
		}
		if strings.Contains(out, m.Code) && len(m.Code) == 6 && strings.Contains(out, `"`+m.Code+`"`) {
			problems = append(problems, "serve logs an SMS code")
		}
	}
	return problems
}

// ctBinary builds the wecampus binary (`go build -o <tmp>/wecampus` of the repository root)
// once.
func ctBinary(t *testing.T) string {
	t.Helper()
	ctBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wecampus-contract-")
		if err != nil {
			ctBuildErr = err
			return
		}
		ctBinDir = dir
		ctBin = filepath.Join(dir, "wecampus")
		cmd := exec.Command("go", "build", "-o", ctBin, "..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			ctBuildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if ctBuildErr != nil {
		t.Fatal(ctBuildErr)
	}
	return ctBin
}
