package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Distinctive secret values: tests assert that none of them is ever printed.
const (
	testSessionSecret  = "sessionSECRET-0123456789-abcdefghij-XYZ"
	testAppSecret      = "appSECRET-qwertyuiop-1234"
	testContactsSecret = "contactsSECRET-asdfghjkl-5678"
	testCallbackToken  = "cbTOKENzxcvbnm"
	testAESKey         = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" // 43 characters
	testSMSToken       = "smsTOKEN-poiuytrewq-9999"
)

var testSecrets = []string{testSessionSecret, testAppSecret, testContactsSecret, testCallbackToken, testAESKey, testSMSToken}

// baseConfig returns a valid config as a YAML tree: SQLite in a temp dir, placeholder URLs.
func baseConfig(t *testing.T) map[string]any {
	t.Helper()
	return map[string]any{
		"server": map[string]any{
			"addr":           "127.0.0.1:0",
			"base_url":       "https://wecampus.example.edu.cn",
			"session_secret": testSessionSecret,
		},
		"database": map[string]any{
			"driver": "sqlite",
			"dsn":    filepath.Join(t.TempDir(), "wecampus.db"),
		},
		"log": map[string]any{"level": "warn"},
		"wecom": map[string]any{
			"corp_id":          "ww0123456789abcdef",
			"agent_id":         1000002,
			"app_secret":       testAppSecret,
			"contacts_secret":  testContactsSecret,
			"callback_token":   testCallbackToken,
			"callback_aes_key": testAESKey,
		},
		"cas": map[string]any{
			"base_url": "https://authserver.example.edu.cn/authserver",
		},
		"identity": map[string]any{
			"rules": []any{
				map[string]any{"type": "student", "number": "^[0-9]{8,12}$", "department": 2, "label": "学生"},
				map[string]any{"type": "staff", "department": 3, "label": "教职工"},
			},
		},
		"sms": map[string]any{
			"provider": "http",
			"http":     map[string]any{"url": "https://sms.example.edu.cn/send", "token": testSMSToken},
		},
	}
}

// setKey sets (or, with value deleteKey, removes) a dotted path in a YAML tree; numeric segments
// index lists.
func setKey(t *testing.T, tree map[string]any, path string, value any) {
	t.Helper()
	parts := strings.Split(path, ".")
	var cur any = tree
	for i, p := range parts {
		last := i == len(parts)-1
		switch node := cur.(type) {
		case map[string]any:
			if last {
				if value == deleteKey {
					delete(node, p)
				} else {
					node[p] = value
				}
				return
			}
			next, ok := node[p]
			if !ok {
				next = map[string]any{}
				node[p] = next
			}
			cur = next
		case []any:
			n, err := strconv.Atoi(p)
			if err != nil || n >= len(node) {
				t.Fatalf("setKey %s: bad index %q", path, p)
			}
			if last {
				node[n] = value
				return
			}
			cur = node[n]
		default:
			t.Fatalf("setKey %s: %q is not a mapping", path, p)
		}
	}
}

type deleteMarker struct{}

var deleteKey = deleteMarker{}

func writeConfig(t *testing.T, tree map[string]any) string {
	t.Helper()
	data, err := yaml.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, baseConfig(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.shutdown_timeout", cfg.Server.ShutdownTimeout, 15 * time.Second},
		{"server.trusted_proxies", len(cfg.Server.TrustedProxies), 0},
		{"server.rate_limit.per_minute", cfg.Server.RateLimit.PerMinute, 300},
		{"log.format", cfg.Log.Format, "json"},
		{"wecom.callback_max_age", cfg.WeCom.CallbackMaxAge, 5 * time.Minute},
		{"wecom.api_base", cfg.WeCom.APIBase, "https://qyapi.weixin.qq.com"},
		{"wecom.oauth_base", cfg.WeCom.OAuthBase, "https://open.weixin.qq.com"},
		{"wecom.verify_mode", cfg.WeCom.VerifyMode, "tfa"},
		{"wecom.timeout", cfg.WeCom.Timeout, 5 * time.Second},
		{"wecom.help_key", cfg.WeCom.HelpKey, "HELP"},
		{"wecom.join_qrcode_url", cfg.WeCom.JoinQRCodeURL, ""},
		{"cas.protocol", cfg.CAS.Protocol, 3},
		{"cas.attributes.name", cfg.CAS.Attributes.Name, "cn"},
		{"cas.attributes.type", cfg.CAS.Attributes.Type, "userType"},
		{"cas.timeout", cfg.CAS.Timeout, 5 * time.Second},
		{"identity.userid", cfg.Identity.UserID, "{{.Number}}"},
		{"identity.rules[1].label", cfg.Identity.Rules[1].Label, "教职工"},
		{"identity.rules[0].department", cfg.Identity.Rules[0].Department, int64(2)},
		{"sms.allow_log", cfg.SMS.AllowLog, false},
		{"sms.code_ttl", cfg.SMS.CodeTTL, 5 * time.Minute},
		{"sms.cooldown", cfg.SMS.Cooldown, 60 * time.Second},
		{"sms.daily_limit", cfg.SMS.DailyLimit, 10},
		{"sms.max_attempts", cfg.SMS.MaxAttempts, 5},
		{"sms.ip_limit", cfg.SMS.IPLimit, 200},
		{"sms.ip_window", cfg.SMS.IPWindow, time.Hour},
		{"sms.tencentcloud.region", cfg.SMS.TencentCloud.Region, "ap-guangzhou"},
		{"redis.addr", cfg.Redis.Addr, ""},
		{"redis.db", cfg.Redis.DB, 0},
		{"redis.key_prefix", cfg.Redis.KeyPrefix, "wecampus:"},
		{"wecom.app_secret", cfg.WeCom.AppSecret.Reveal(), testAppSecret},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestConfigInvalid: every bad config fails with a line naming the key.
func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name  string
		key   string // dotted path to change
		value any
		want  string         // must appear in the error
		also  map[string]any // further changes
		lines int            // problems expected (0 means 1)
	}{
		{"AESKey42", "wecom.callback_aes_key", testAESKey[:42], "wecom.callback_aes_key", nil, 0},
		{"AESKeyBadChar", "wecom.callback_aes_key", testAESKey[:42] + "=", "wecom.callback_aes_key", nil, 0},
		{"AESKeyMissing", "wecom.callback_aes_key", deleteKey, "wecom.callback_aes_key: required", nil, 0},
		{"ContactsAESKey42", "wecom.contacts_callback_aes_key", testAESKey[:42], "wecom.contacts_callback_aes_key", map[string]any{"wecom.contacts_callback_token": "tok"}, 0},
		{"ContactsTokenWithoutKey", "wecom.contacts_callback_token", "tok", "wecom.contacts_callback_aes_key", nil, 0},
		{"BaseURLRelative", "server.base_url", "/wecampus", "server.base_url", nil, 0},
		{"BaseURLNoScheme", "server.base_url", "wecampus.example.edu.cn", "server.base_url", nil, 0},
		{"BaseURLWithPath", "server.base_url", "https://wecampus.example.edu.cn/app", "server.base_url", nil, 0},
		{"BaseURLWithQuery", "server.base_url", "https://wecampus.example.edu.cn?x=1", "server.base_url", nil, 0},
		{"BaseURLFTP", "server.base_url", "ftp://wecampus.example.edu.cn", "server.base_url", nil, 0},
		{"BaseURLMissing", "server.base_url", deleteKey, "server.base_url: required", nil, 0},
		{"SessionSecretShort", "server.session_secret", "0123456789abcdef0123456789abcde", "server.session_secret", nil, 0},
		{"SessionSecretMissing", "server.session_secret", deleteKey, "server.session_secret: required", nil, 0},
		{"AddrBad", "server.addr", "8080", "server.addr", nil, 0},
		{"AddrBadPort", "server.addr", ":http-alt", "server.addr", nil, 0},
		{"TrustedProxyBad", "server.trusted_proxies", []any{"10.0.0.0/8", "proxy.example"}, "server.trusted_proxies[1]", nil, 0},
		{"ShutdownTimeoutZero", "server.shutdown_timeout", "0s", "server.shutdown_timeout", nil, 0},
		{"MetricsAddrBad", "server.metrics_addr", "9090", "server.metrics_addr", nil, 0},
		{"MetricsAddrIsAddr", "server.metrics_addr", ":9090", "server.metrics_addr", map[string]any{"server.addr": ":9090"}, 0},
		{"RateLimitZero", "server.rate_limit.per_minute", 0, "server.rate_limit.per_minute", nil, 0},
		{"DriverBad", "database.driver", "postgres", "database.driver", nil, 0},
		{"DSNMissing", "database.dsn", deleteKey, "database.dsn: required", nil, 0},
		{"LogLevelBad", "log.level", "loud", "log.level", nil, 0},
		{"LogFormatBad", "log.format", "xml", "log.format", nil, 0},
		{"CorpIDMissing", "wecom.corp_id", deleteKey, "wecom.corp_id: required", nil, 0},
		{"AgentIDZero", "wecom.agent_id", 0, "wecom.agent_id", nil, 0},
		{"AgentIDNotNumber", "wecom.agent_id", "abc", "wecom.agent_id", nil, 0},
		{"AppSecretMissing", "wecom.app_secret", deleteKey, "wecom.app_secret: required", nil, 0},
		{"ContactsSecretMissing", "wecom.contacts_secret", deleteKey, "wecom.contacts_secret: required", nil, 0},
		{"CallbackTokenMissing", "wecom.callback_token", deleteKey, "wecom.callback_token: required", nil, 0},
		{"MaxAgeZero", "wecom.callback_max_age", "0s", "wecom.callback_max_age", nil, 0},
		{"MaxAgeNotDuration", "wecom.callback_max_age", "five minutes", "wecom.callback_max_age", nil, 0},
		{"APIBaseRelative", "wecom.api_base", "qyapi.weixin.qq.com", "wecom.api_base", nil, 0},
		{"VerifyModeBad", "wecom.verify_mode", "sms", "wecom.verify_mode", nil, 0},
		{"JoinQRCodeURLBad", "wecom.join_qrcode_url", "qr.png", "wecom.join_qrcode_url", nil, 0},
		{"CASBaseURLMissing", "cas.base_url", deleteKey, "cas.base_url: required", nil, 0},
		{"CASBaseURLRelative", "cas.base_url", "/authserver", "cas.base_url", nil, 0},
		{"CASProtocolBad", "cas.protocol", 1, "cas.protocol", nil, 0},
		{"CASTimeoutNegative", "cas.timeout", "-1s", "cas.timeout", nil, 0},
		{"IdentityBadRegex", "identity.rules.0.number", "^[0-9", "identity.rules[0].number", nil, 0},
		{"IdentityBadTemplate", "identity.userid", "{{.Number", "identity.userid", nil, 0},
		{"IdentityTemplateUnknownField", "identity.userid", "{{.Email}}", "identity.userid", nil, 0},
		{"IdentityNoRules", "identity.rules", []any{}, "identity.rules", nil, 0},
		{"IdentityRuleNoDepartment", "identity.rules.1.department", 0, "identity.rules[1].department", nil, 0},
		{"IdentityRuleUnknownField", "identity.rules.0.dept", 4, "dept", nil, 0},
		{"UnknownTopLevelKey", "servr", map[string]any{"addr": ":80"}, "servr.addr: unknown key", nil, 0},
		{"UnknownNestedKey", "wecom.agentid", 1000002, "wecom.agentid: unknown key", nil, 0},
		{"SMSProviderBad", "sms.provider", "carrier-pigeon", "sms.provider", nil, 0},
		{"SMSHTTPNoURL", "sms.http.url", deleteKey, "sms.http.url: required", nil, 0},
		{"SMSHTTPNoToken", "sms.http.token", deleteKey, "sms.http.token: required", nil, 0},
		{"SMSHTTPRelativeURL", "sms.http.url", "/send", "sms.http.url", nil, 0},
		{"SMSTencentNoKey", "sms.provider", "tencentcloud", "sms.tencentcloud.secret_key: required", nil, 5},
		{"SMSDailyLimitZero", "sms.daily_limit", 0, "sms.daily_limit", nil, 0},
		{"SMSCooldownZero", "sms.cooldown", "0s", "sms.cooldown", nil, 0},
		{"RedisAddrNoPort", "redis.addr", "redis.example", "redis.addr", nil, 0},
		{"RedisDBNegative", "redis.db", -1, "redis.db", map[string]any{"redis.addr": "127.0.0.1:6379"}, 0},
		{"RedisKeyPrefixGlob", "redis.key_prefix", "wecampus*", "redis.key_prefix", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := baseConfig(t)
			setKey(t, tree, tt.key, tt.value)
			for k, v := range tt.also {
				setKey(t, tree, k, v)
			}
			err := loadAndValidate(writeConfig(t, tree))
			if err == nil {
				t.Fatalf("config with %s = %v passed validation", tt.key, tt.value)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if want := max(tt.lines, 1); len(lines) != want {
				t.Errorf("want %d line(s), one per problem, got %d:\n%s", want, len(lines), err)
			}
			for _, s := range testSecrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error reveals a secret: %s", err)
				}
			}
		})
	}
}

func loadAndValidate(path string) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	return cfg.Validate()
}

func TestConfigCollectsAllProblems(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "wecom.callback_aes_key", "short")
	setKey(t, tree, "server.base_url", "relative")
	setKey(t, tree, "database.driver", "oracle")
	err := loadAndValidate(writeConfig(t, tree))
	if err == nil {
		t.Fatal("passed")
	}
	lines := strings.Split(err.Error(), "\n")
	var keys []string
	for _, l := range lines {
		keys = append(keys, strings.SplitN(strings.TrimPrefix(l, "config: "), ":", 2)[0])
	}
	want := []string{"database.driver", "server.base_url", "wecom.callback_aes_key"}
	if !slices.Equal(keys, want) {
		t.Errorf("problem keys = %v, want %v (error:\n%s)", keys, want, err)
	}
}

func TestConfigContactsCallbackBothOrNeither(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "wecom.contacts_callback_aes_key", testAESKey)
	if err := loadAndValidate(writeConfig(t, tree)); err == nil || !strings.Contains(err.Error(), "wecom.contacts_callback_token") {
		t.Errorf("key without token: err = %v", err)
	}
	setKey(t, tree, "wecom.contacts_callback_token", "contactsTok")
	if err := loadAndValidate(writeConfig(t, tree)); err != nil {
		t.Errorf("both set: %v", err)
	}
}

func TestConfigSMSProviders(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "sms.provider", "tencentcloud")
	setKey(t, tree, "sms.http", deleteKey)
	setKey(t, tree, "sms.tencentcloud", map[string]any{
		"secret_id": "AKIDxxxx", "secret_key": "tcKEY-secret", "sdk_app_id": "1400000000",
		"sign_name": "某某大学", "template_id": "123456",
	})
	cfg, err := LoadConfig(writeConfig(t, tree))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("tencentcloud: %v", err)
	}
	if !slices.Contains(cfg.Secrets(), "tcKEY-secret") {
		t.Errorf("Secrets() misses sms.tencentcloud.secret_key")
	}

	setKey(t, tree, "sms.provider", "log")
	cfg, err = LoadConfig(writeConfig(t, tree))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("log provider is valid config: %v", err)
	}
	if err := cfg.CheckServe(); err == nil || !strings.Contains(err.Error(), "sms.allow_log") {
		t.Errorf("CheckServe with provider log = %v, want a refusal naming sms.allow_log", err)
	}
	cfg.SMS.AllowLog = true
	if err := cfg.CheckServe(); err != nil {
		t.Errorf("CheckServe with allow_log: %v", err)
	}
}

func TestConfigEnvOverridesFile(t *testing.T) {
	path := writeConfig(t, baseConfig(t))
	t.Setenv("WECAMPUS_WECOM_APP_SECRET", "from-env-secret")
	t.Setenv("WECAMPUS_SERVER_BASE_URL", "https://env.example.edu.cn/")
	t.Setenv("WECAMPUS_WECOM_AGENT_ID", "1000099")
	t.Setenv("WECAMPUS_SMS_COOLDOWN", "90s")
	t.Setenv("WECAMPUS_SMS_ALLOW_LOG", "true")
	t.Setenv("WECAMPUS_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")
	t.Setenv("WECAMPUS_SMS_TENCENTCLOUD_SIGN_NAME", "某某大学") // env-only key, not in the file
	t.Setenv("WECAMPUS_IDENTITY_RULES", `[{"type":"staff","department":7,"label":"教工"}]`)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.WeCom.AppSecret.Reveal(); got != "from-env-secret" {
		t.Errorf("app_secret = %q, want the env value", got)
	}
	if cfg.Server.BaseURL != "https://env.example.edu.cn" {
		t.Errorf("base_url = %q", cfg.Server.BaseURL)
	}
	if cfg.WeCom.AgentID != 1000099 {
		t.Errorf("agent_id = %d", cfg.WeCom.AgentID)
	}
	if cfg.SMS.Cooldown != 90*time.Second || !cfg.SMS.AllowLog {
		t.Errorf("sms = %v / %v", cfg.SMS.Cooldown, cfg.SMS.AllowLog)
	}
	if !slices.Equal(cfg.Server.TrustedProxies, []string{"10.0.0.0/8", "192.168.1.1"}) {
		t.Errorf("trusted_proxies = %q", cfg.Server.TrustedProxies)
	}
	if cfg.SMS.TencentCloud.SignName != "某某大学" {
		t.Errorf("env-only key sms.tencentcloud.sign_name = %q", cfg.SMS.TencentCloud.SignName)
	}
	if len(cfg.Identity.Rules) != 1 || cfg.Identity.Rules[0].Department != 7 {
		t.Errorf("identity.rules from env = %+v", cfg.Identity.Rules)
	}
}

func TestConfigEnvOnly(t *testing.T) {
	t.Setenv("WECAMPUS_SERVER_BASE_URL", "https://wecampus.example.edu.cn")
	t.Setenv("WECAMPUS_SERVER_SESSION_SECRET", testSessionSecret)
	t.Setenv("WECAMPUS_DATABASE_DRIVER", "sqlite")
	t.Setenv("WECAMPUS_DATABASE_DSN", filepath.Join(t.TempDir(), "x.db"))
	t.Setenv("WECAMPUS_WECOM_CORP_ID", "ww1")
	t.Setenv("WECAMPUS_WECOM_AGENT_ID", "1000002")
	t.Setenv("WECAMPUS_WECOM_APP_SECRET", testAppSecret)
	t.Setenv("WECAMPUS_WECOM_CONTACTS_SECRET", testContactsSecret)
	t.Setenv("WECAMPUS_WECOM_CALLBACK_TOKEN", testCallbackToken)
	t.Setenv("WECAMPUS_WECOM_CALLBACK_AES_KEY", testAESKey)
	t.Setenv("WECAMPUS_CAS_BASE_URL", "https://cas.example.edu.cn/cas")
	t.Setenv("WECAMPUS_IDENTITY_RULES", `[{"type":"student","department":2}]`)
	t.Setenv("WECAMPUS_SMS_PROVIDER", "log")
	if err := loadAndValidate(""); err != nil {
		t.Fatalf("env-only config: %v", err)
	}
	t.Setenv("WECAMPUS_IDENTITY_RULES", `[{"type":"student","dept":2}]`)
	if err := loadAndValidate(""); err == nil || !strings.Contains(err.Error(), "dept") {
		t.Errorf("unknown rule field from env: err = %v", err)
	}
}

func TestConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") || !strings.Contains(err.Error(), "--config") {
		t.Errorf("err = %v, want the path and the hint to name the file with --config", err)
	}
}

// TestConfigUnreadableFile: a file that exists but cannot be read is not a missing file: the
// hint is about its permissions, not about --config.
func TestConfigUnreadableFile(t *testing.T) {
	err := openError(&fs.PathError{Op: "open", Path: "/etc/wecampus/config.yaml", Err: fs.ErrPermission})
	if msg := err.Error(); !strings.Contains(msg, "permission denied") || !strings.Contains(msg, "permissions") || strings.Contains(msg, "--config") {
		t.Errorf("permission error = %q, want a hint about owner and permissions", msg)
	}
	if os.Geteuid() == 0 {
		return // root reads any file: the real thing cannot be staged
	}
	path := writeConfig(t, baseConfig(t))
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "permissions") {
		t.Errorf("unreadable file: err = %v", err)
	}
}

// TestConfigReportsEverythingAtOnce: values that do not decode, unknown keys and failed checks
// are reported together, each on its own line naming the key and echoing the bad value; a key
// whose value did not decode is not reported again by its checks.
func TestConfigReportsEverythingAtOnce(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "server.shutdown_timeout", "15 seconds")
	setKey(t, tree, "server.colour", "blue")
	setKey(t, tree, "wecom.agentid", 7)
	setKey(t, tree, "wecom.agent_id", -5)
	setKey(t, tree, "cas.protocol", "three")
	setKey(t, tree, "sms.allow_log", "maybe")
	setKey(t, tree, "identity.rules.0.dept", 4)
	setKey(t, tree, "server.base_url", "wecampus.example.edu.cn")
	err := loadAndValidate(writeConfig(t, tree))
	if err == nil {
		t.Fatal("passed")
	}
	want := []string{
		`config: cas.protocol: must be a whole number (got "three")`,
		`config: identity.rules[0].dept: unknown key`,
		`config: server.base_url: must be an absolute http(s) URL (got "wecampus.example.edu.cn")`,
		`config: server.colour: unknown key`,
		`config: server.shutdown_timeout: must be a duration such as 30s, 5m or 1h (got "15 seconds")`,
		`config: sms.allow_log: must be true or false (got "maybe")`,
		`config: wecom.agent_id: must be a positive integer, the AgentId of the app (got -5)`,
		`config: wecom.agentid: unknown key (did you mean wecom.agent_id?)`,
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// TestConfigDecodeErrorHidesSecret: a secret that does not decode is reported without its value.
func TestConfigDecodeErrorHidesSecret(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "wecom.app_secret", []any{testAppSecret, "x"})
	err := loadAndValidate(writeConfig(t, tree))
	if err == nil || err.Error() != "config: wecom.app_secret: must be a single text value" {
		t.Errorf("err = %v", err)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	s := Secret("hunter2-very-secret")
	cfg := Config{WeCom: WeComConfig{AppSecret: s}}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%v %s %q %x %d %#v %+v %v\n", s, s, s, s, s, s, cfg, &cfg)
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	buf.Write(j)
	y, err := yaml.Marshal(cfg.WeCom)
	if err != nil {
		t.Fatal(err)
	}
	buf.Write(y)
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "secret", s, "cfg", cfg)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "secret", s, "wecom", cfg.WeCom)
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("secret printed:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), redacted) {
		t.Errorf("no %s in output:\n%s", redacted, buf.String())
	}
	if s.Reveal() != "hunter2-very-secret" {
		t.Errorf("Reveal = %q", s.Reveal())
	}
}

func TestSecretsIncludeDSNPassword(t *testing.T) {
	cfg := Config{Database: DatabaseConfig{DSN: "wecampus:pa55word@tcp(127.0.0.1:3306)/wecampus"}}
	if got := cfg.Secrets(); !slices.Contains(got, "pa55word") {
		t.Errorf("Secrets() = %q, want the DSN password too", got)
	}
}

// TestExampleDocumentsEveryKey: config.yaml.example is valid once its placeholders are filled in,
// lists every key of Config, and README.md documents each of them.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("config.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		t.Fatalf("config.yaml.example: %v", err)
	}
	var inExample []string
	var walk func(prefix string, n any)
	walk = func(prefix string, n any) {
		m, ok := n.(map[string]any)
		if !ok || mapKey(prefix) { // a map's entries are its value (identity.type_labels)
			inExample = append(inExample, prefix)
			return
		}
		for k, v := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, v)
		}
	}
	walk("", tree)
	keys := configKeys()
	for _, k := range keys {
		if !slices.Contains(inExample, k) {
			t.Errorf("config.yaml.example lacks %s", k)
		}
	}
	for _, k := range inExample {
		if !slices.Contains(keys, k) {
			t.Errorf("config.yaml.example has unknown key %s", k)
		}
	}

	// Loading the example as-is must succeed (strict decode) and validation may complain only
	// about the placeholder secrets.
	cfg, err := LoadConfig("config.yaml.example")
	if err == nil {
		t.Fatal("the example's placeholders passed validation")
	}
	for line := range strings.Lines(err.Error()) {
		if !strings.Contains(line, "still holds the placeholder") {
			t.Errorf("load example: %s", strings.TrimSpace(line))
		}
	}
	if _, err := cfg.IdentityPolicy(); err != nil {
		t.Errorf("example identity: %v", err)
	}

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !bytes.Contains(readme, []byte("`"+k+"`")) {
			t.Errorf("README.md does not document `%s`", k)
		}
	}
}

func TestConfigKeysHaveEnvNames(t *testing.T) {
	keys := configKeys()
	for _, want := range []string{"server.addr", "wecom.contacts_callback_aes_key", "cas.attributes.type", "identity.rules", "sms.tencentcloud.endpoint", "sms.ip_window"} {
		if !slices.Contains(keys, want) {
			t.Errorf("configKeys lacks %s", want)
		}
	}
	if got := envName("wecom.app_secret"); got != "WECAMPUS_WECOM_APP_SECRET" {
		t.Errorf("envName = %s", got)
	}
}

func TestSecretFromYAMLNumber(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "wecom.callback_token", 123456789)
	cfg, err := LoadConfig(writeConfig(t, tree))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.WeCom.CallbackToken.Reveal(); got != "123456789" {
		t.Errorf("callback_token = %q", got)
	}
}

func TestExamplePlaceholdersRefused(t *testing.T) {
	err := loadAndValidate("config.yaml.example")
	if err == nil {
		t.Fatal("the unedited example passed validation")
	}
	for _, key := range []string{"server.session_secret", "database.dsn", "wecom.app_secret", "wecom.contacts_secret", "wecom.callback_token", "wecom.callback_aes_key", "sms.http.token"} {
		if !strings.Contains(err.Error(), "config: "+key+": still holds the placeholder") {
			t.Errorf("no placeholder error for %s:\n%s", key, err)
		}
	}
}

// TestConfigTypeLabels: identity.type_labels from the file (its keys are values: a type in any
// case, no "unknown key"), from the environment as JSON, and an empty label named by its key.
func TestConfigTypeLabels(t *testing.T) {
	tree := baseConfig(t)
	setKey(t, tree, "identity.type_labels", map[string]any{"Alumni": "老校友", "T9": "外聘人员"})
	cfg, err := LoadConfig(writeConfig(t, tree))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.IdentityPolicy()
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]string{"alumni": "老校友", "ALUMNI": "老校友", "t9": "外聘人员", "retiree": "离退休人员", "staff": "教职工", "x1": "x1"} {
		if got := p.TypeLabel(typ); got != want {
			t.Errorf("TypeLabel(%q) = %q, want %q", typ, got, want)
		}
	}

	t.Setenv("WECAMPUS_IDENTITY_TYPE_LABELS", `{"alumni":"校友会员"}`)
	if cfg, err = LoadConfig(writeConfig(t, baseConfig(t))); err != nil {
		t.Fatal(err)
	}
	if p, err = cfg.IdentityPolicy(); err != nil || p.TypeLabel("alumni") != "校友会员" {
		t.Errorf("type_labels from env: %v %v", cfg.Identity.TypeLabels, err)
	}

	t.Setenv("WECAMPUS_IDENTITY_TYPE_LABELS", "")
	setKey(t, tree, "identity.type_labels", map[string]any{"alumni": " "})
	if err := loadAndValidate(writeConfig(t, tree)); err == nil || !strings.Contains(err.Error(), "identity.type_labels.alumni") {
		t.Errorf("empty label: err = %v", err)
	}
}
