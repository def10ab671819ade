package contracttest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// CONTRACT §2: configuration errors, for serve, migrate and config check alike.

func TestContractConfigErrors(t *testing.T) {
	w := ctWorldShared(t)
	cfg, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	write := func(t *testing.T, text string) string {
		p := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A bad secret: config check fails on that line only and prints no secret.
	bad := strings.Replace(string(cfg), w.secrets[0], "app-wrongwrongwrong", 1)
	r := ctCLI(t, w.secrets, nil, "--config", write(t, bad), "config", "check")
	if r.code == 0 {
		t.Errorf("config check with a bad app secret: exit 0\n%s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, "app-wrongwrongwrong") {
		t.Errorf("config check prints the wrong secret")
	}

	// A 42-character aes key: non-zero, one line naming the key; for serve and config check.
	short := strings.Replace(string(cfg), w.secrets[3], w.secrets[3][:42], 1)
	path := write(t, short)
	for _, args := range [][]string{{"serve"}, {"config", "check"}, {"migrate"}} {
		r := ctCLI(t, w.secrets, nil, append([]string{"--config", path}, args...)...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if args[0] == "config" { // the report goes to stdout, one line per check
			lines = slices.DeleteFunc(strings.Split(strings.TrimSpace(r.stdout+r.stderr), "\n"), func(l string) bool {
				return !strings.Contains(l, "callback_aes_key")
			})
		}
		if r.code == 0 || len(lines) != 1 || !strings.Contains(lines[0], "wecom.callback_aes_key") {
			t.Errorf("%v with a 42-character aes key: exit %d, stderr:\n%s", args, r.code, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, w.secrets[3][:42]) {
			t.Errorf("%v prints the aes key", args)
		}
	}

	// Short secrets that occur inside the message: the key name stays readable and every
	// redaction is whole.
	tiny := strings.Replace(short, w.secrets[0], "e", 1)
	tiny = strings.Replace(tiny, w.secrets[1], "call", 1)
	r = ctCLI(t, w.secrets, nil, "--config", write(t, tiny), "serve")
	if line := strings.TrimSpace(r.stderr); r.code == 0 || !strings.Contains(line, "wecom.callback_aes_key") ||
		strings.Count(line, "<") != strings.Count(line, "<redacted>") || strings.Contains(line, "\n") {
		t.Errorf("serve with short secrets and a 42-character aes key: exit %d, stderr:\n%s", r.code, r.stderr)
	}

	// Unknown key, non-absolute base_url, missing required key.
	for name, text := range map[string]string{
		"server.colour":    strings.Replace(string(cfg), "server:\n", "server:\n  colour: \"blue\"\n", 1),
		"server.base_url":  regexp.MustCompile(`base_url: "http://[^"]+"`).ReplaceAllString(string(cfg), `base_url: "wecampus.example.edu.cn"`),
		"wecom.app_secret": regexp.MustCompile(`  app_secret: "[^"]+"\n`).ReplaceAllString(string(cfg), ""),
	} {
		r := ctCLI(t, w.secrets, nil, "--config", write(t, text), "serve")
		if r.code == 0 || !strings.Contains(r.stderr, name) {
			t.Errorf("serve with a bad %s: exit %d, stderr:\n%s", name, r.code, r.stderr)
		}
	}

	// One contacts key without the other.
	half := regexp.MustCompile(`  contacts_callback_aes_key: "[^"]+"\n`).ReplaceAllString(string(cfg), "")
	if r := ctCLI(t, w.secrets, nil, "--config", write(t, half), "serve"); r.code == 0 || !strings.Contains(r.stderr, "contacts_callback") {
		t.Errorf("serve with only the contacts token: exit %d, stderr:\n%s", r.code, r.stderr)
	}

	// WECAMPUS_CONFIG names the file.
	if r := ctCLI(t, w.secrets, []string{"WECAMPUS_CONFIG=" + w.cfgPath}, "binding", "list", "--csv"); r.code != 0 || !strings.HasPrefix(r.stdout, "number,") {
		t.Errorf("WECAMPUS_CONFIG: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// migrate on a fresh database.
	fresh := strings.Replace(string(cfg), filepath.Join(w.dir, "wecampus.db"), filepath.Join(t.TempDir(), "fresh.db"), 1)
	if r := ctCLI(t, w.secrets, nil, "--config", write(t, fresh), "migrate"); r.code != 0 {
		t.Errorf("migrate on a fresh database: exit %d\n%s", r.code, r.stderr)
	}
}
