package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/wecampus/wecampus/app"
)

// envPrefix is the prefix of every environment override: server.base_url is
// WECAMPUS_SERVER_BASE_URL.
const envPrefix = "WECAMPUS"

// Config is config.yaml (CONTRACT.md §2 plus the keys documented in README.md). Every leaf key can
// be overridden by the environment variable WECAMPUS_<PATH> with "_" for ".".
//
// To add a section, add a field with a mapstructure tag here, its defaults to
// configDefaults, its checks to Validate, and its keys to config.yaml.example and README.md; the
// env bindings are derived from this struct, and TestExampleDocumentsEveryKey catches omissions.
type Config struct {
	Server   ServerConfig   `mapstructure:"server"`
	Database DatabaseConfig `mapstructure:"database"`
	Log      LogConfig      `mapstructure:"log"`
	WeCom    WeComConfig    `mapstructure:"wecom"`
	CAS      CASConfig      `mapstructure:"cas"`
	Identity IdentityConfig `mapstructure:"identity"`
	SMS      SMSConfig      `mapstructure:"sms"`
	Menu     []MenuButton   `mapstructure:"menu"`
}

// ServerConfig is the server: section.
type ServerConfig struct {
	Addr            string        `mapstructure:"addr"`
	BaseURL         string        `mapstructure:"base_url"`
	SessionSecret   Secret        `mapstructure:"session_secret"`
	TrustedProxies  []string      `mapstructure:"trusted_proxies"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	HelpContact     string        `mapstructure:"help_contact"`
}

// DatabaseConfig is the database: section. The DSN is a Secret because a MySQL DSN holds the
// password.
type DatabaseConfig struct {
	Driver string `mapstructure:"driver"`
	DSN    Secret `mapstructure:"dsn"`
}

// LogConfig is the log: section.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// WeComConfig is the wecom: section.
type WeComConfig struct {
	CorpID                 string        `mapstructure:"corp_id"`
	AgentID                int64         `mapstructure:"agent_id"`
	AppSecret              Secret        `mapstructure:"app_secret"`
	ContactsSecret         Secret        `mapstructure:"contacts_secret"`
	CallbackToken          Secret        `mapstructure:"callback_token"`
	CallbackAESKey         Secret        `mapstructure:"callback_aes_key"`
	ContactsCallbackToken  Secret        `mapstructure:"contacts_callback_token"`
	ContactsCallbackAESKey Secret        `mapstructure:"contacts_callback_aes_key"`
	CallbackMaxAge         time.Duration `mapstructure:"callback_max_age"`
	APIBase                string        `mapstructure:"api_base"`
	OAuthBase              string        `mapstructure:"oauth_base"`
	VerifyMode             string        `mapstructure:"verify_mode"`
	Timeout                time.Duration `mapstructure:"timeout"`
	HelpKey                string        `mapstructure:"help_key"`
	JoinQRCodeURL          string        `mapstructure:"join_qrcode_url"`
}

// HasContactsCallback reports whether the 通讯录同步 event server (/wecom/contacts) is configured.
func (w WeComConfig) HasContactsCallback() bool {
	return w.ContactsCallbackToken != "" || w.ContactsCallbackAESKey != ""
}

// CASConfig is the cas: section.
type CASConfig struct {
	BaseURL    string        `mapstructure:"base_url"`
	Protocol   int           `mapstructure:"protocol"`
	Attributes CASAttributes `mapstructure:"attributes"`
	Timeout    time.Duration `mapstructure:"timeout"`
}

// CASAttributes names the CAS attributes that hold a person's name and identity type.
type CASAttributes struct {
	Name string `mapstructure:"name"`
	Type string `mapstructure:"type"`
}

// IdentityConfig is the identity: section.
type IdentityConfig struct {
	UserID string         `mapstructure:"userid"`
	Rules  []IdentityRule `mapstructure:"rules"`
}

// IdentityRule is one entry of identity.rules.
type IdentityRule struct {
	Type       string `mapstructure:"type"`
	Number     string `mapstructure:"number"`
	Department int64  `mapstructure:"department"`
	Label      string `mapstructure:"label"`
}

// MenuButton is one entry of menu: (and of its sub_button lists): the app menu that `wecampus
// menu sync` writes (WeCom doc 90231). An empty menu means app.DefaultMenu.
type MenuButton struct {
	Type      string       `mapstructure:"type"`
	Name      string       `mapstructure:"name"`
	Key       string       `mapstructure:"key"`
	URL       string       `mapstructure:"url"`
	SubButton []MenuButton `mapstructure:"sub_button"`
}

func (b MenuButton) toApp() app.MenuButton {
	out := app.MenuButton{Type: b.Type, Name: b.Name, Key: b.Key, URL: b.URL}
	for _, sb := range b.SubButton {
		out.SubButton = append(out.SubButton, sb.toApp())
	}
	return out
}

// SMSConfig is the sms: section: the provider and the code limits of CONTRACT §4.
type SMSConfig struct {
	Provider     string        `mapstructure:"provider"`
	AllowLog     bool          `mapstructure:"allow_log"`
	CodeTTL      time.Duration `mapstructure:"code_ttl"`
	Cooldown     time.Duration `mapstructure:"cooldown"`
	DailyLimit   int           `mapstructure:"daily_limit"`
	MaxAttempts  int           `mapstructure:"max_attempts"`
	IPLimit      int           `mapstructure:"ip_limit"`
	IPWindow     time.Duration `mapstructure:"ip_window"`
	HTTP         SMSHTTP       `mapstructure:"http"`
	TencentCloud SMSTencent    `mapstructure:"tencentcloud"`
}

// SMSHTTP is sms.http: the generic HTTP gateway (CONTRACT §4).
type SMSHTTP struct {
	URL   string `mapstructure:"url"`
	Token Secret `mapstructure:"token"`
}

// SMSTencent is sms.tencentcloud: Tencent Cloud SMS.
type SMSTencent struct {
	SecretID   Secret `mapstructure:"secret_id"`
	SecretKey  Secret `mapstructure:"secret_key"`
	Region     string `mapstructure:"region"`
	SDKAppID   string `mapstructure:"sdk_app_id"`
	SignName   string `mapstructure:"sign_name"`
	TemplateID string `mapstructure:"template_id"`
	Endpoint   string `mapstructure:"endpoint"`
}

// configDefaults are the defaults of the keys that have one; every other key defaults to its zero
// value. Durations are written as in config.yaml.
var configDefaults = map[string]any{
	"server.addr":             ":8080",
	"server.trusted_proxies":  []string{},
	"server.shutdown_timeout": "15s",
	"server.help_contact":     "",
	"database.driver":         "mysql",
	"log.level":               "info",
	"log.format":              "json",
	"wecom.callback_max_age":  "5m",
	"wecom.api_base":          "https://qyapi.weixin.qq.com",
	"wecom.oauth_base":        "https://open.weixin.qq.com",
	"wecom.verify_mode":       "tfa",
	"wecom.timeout":           "5s",
	"wecom.help_key":          "HELP",
	"cas.protocol":            3,
	"cas.attributes.name":     "cn",
	"cas.attributes.type":     "userType",
	"cas.timeout":             "5s",
	"identity.userid":         "{{.Number}}",
	"sms.provider":            "http",
	"sms.allow_log":           false,
	"sms.code_ttl":            "5m",
	"sms.cooldown":            "60s",
	"sms.daily_limit":         10,
	"sms.max_attempts":        5,
	"sms.ip_limit":            200,
	"sms.ip_window":           "1h",
	"sms.tencentcloud.region": "ap-guangzhou",
}

// configKeys lists every leaf key of Config ("server.addr", "identity.rules", ...), derived from
// the mapstructure tags so that a new field is bound to its env variable automatically.
func configKeys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for f := range t.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			key := prefix + tag
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, key+".")
				continue
			}
			keys = append(keys, key)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// envName returns the environment variable that overrides key.
func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// LoadConfig reads the YAML file at path (none when path is ""), applies the environment
// overrides and defaults, and decodes strictly: unknown keys are errors. It does not validate;
// call Validate.
func LoadConfig(path string) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	known := map[string]bool{}
	for _, key := range configKeys() {
		known[key] = true
		// Unmarshal only sees keys viper already knows (spf13/viper#761): give every key a
		// default or an explicit env binding.
		if d, ok := configDefaults[key]; ok {
			v.SetDefault(key, d)
		} else if err := v.BindEnv(key); err != nil {
			return nil, fmt.Errorf("config: bind %s: %w", key, err)
		}
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w (set --config or WECAMPUS_CONFIG)", err)
		}
		defer f.Close()
		if err := v.ReadConfig(f); err != nil {
			return nil, fmt.Errorf("config: %s: %s", path, oneLine(err.Error()))
		}
	}
	var unknown []string
	for _, key := range v.AllKeys() {
		if !known[key] && !isPrefixOfKnown(known, key) {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		errs := make([]error, len(unknown))
		for i, key := range unknown {
			errs[i] = fmt.Errorf("config: %s: unknown key", key)
		}
		return nil, errors.Join(errs...)
	}
	var cfg Config
	hook := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		secretHook,
		jsonListHook,
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	))
	if err := v.UnmarshalExact(&cfg, hook); err != nil {
		return nil, fmt.Errorf("config: %s", decodeMessage(err))
	}
	cfg.normalize()
	return &cfg, nil
}

func isPrefixOfKnown(known map[string]bool, key string) bool {
	for k := range known {
		if strings.HasPrefix(k, key+".") {
			return true
		}
	}
	return false
}

var quotedKey = regexp.MustCompile(`^'([^']+)' (.*)$`)

// decodeMessage turns mapstructure's multi-line report into one line per problem, each starting
// with its key: "'wecom.agent_id' cannot parse ..." becomes "wecom.agent_id: cannot parse ...".
func decodeMessage(err error) string {
	s := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):")
	var parts []string
	for line := range strings.Lines(s) {
		line = strings.TrimPrefix(strings.TrimSpace(line), "* ")
		if line == "" {
			continue
		}
		parts = append(parts, quotedKey.ReplaceAllString(line, "$1: $2"))
	}
	return strings.Join(parts, "\nconfig: ")
}

func oneLine(s string) string {
	var parts []string
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, "; ")
}

var secretType = reflect.TypeFor[Secret]()

// secretHook decodes any scalar (a token written as a YAML number, say) into a Secret.
func secretHook(from, to reflect.Type, data any) (any, error) {
	if to != secretType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.String, reflect.Int, reflect.Int64, reflect.Float64, reflect.Bool, reflect.Uint64:
		return Secret(fmt.Sprint(data)), nil
	}
	return data, nil
}

// jsonListHook lets a list of mappings (identity.rules) come from the environment as JSON:
// WECAMPUS_IDENTITY_RULES='[{"type":"staff","department":3}]'.
func jsonListHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice || to.Elem().Kind() != reflect.Struct {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if s == "" {
		return []any{}, nil
	}
	var list []any
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, fmt.Errorf("expected a JSON list: %w", err)
	}
	return list, nil
}

// normalize trims what admins commonly leave around values.
func (c *Config) normalize() {
	c.Server.BaseURL = strings.TrimRight(strings.TrimSpace(c.Server.BaseURL), "/")
	c.CAS.BaseURL = strings.TrimRight(strings.TrimSpace(c.CAS.BaseURL), "/")
	c.WeCom.APIBase = strings.TrimRight(strings.TrimSpace(c.WeCom.APIBase), "/")
	c.WeCom.OAuthBase = strings.TrimRight(strings.TrimSpace(c.WeCom.OAuthBase), "/")
	c.WeCom.CorpID = strings.TrimSpace(c.WeCom.CorpID)
	proxies := c.Server.TrustedProxies[:0]
	for _, p := range c.Server.TrustedProxies {
		if p = strings.TrimSpace(p); p != "" {
			proxies = append(proxies, p)
		}
	}
	c.Server.TrustedProxies = proxies
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	c.Log.Format = strings.ToLower(strings.TrimSpace(c.Log.Format))
	c.SMS.Provider = strings.ToLower(strings.TrimSpace(c.SMS.Provider))
	c.Database.Driver = strings.ToLower(strings.TrimSpace(c.Database.Driver))
	c.WeCom.VerifyMode = strings.ToLower(strings.TrimSpace(c.WeCom.VerifyMode))
}

var aesKeyPattern = regexp.MustCompile(`^[A-Za-z0-9]{43}$`)

// Validate checks every key and returns all problems at once, one line each, every line naming
// its key ("config: wecom.callback_aes_key: ...").
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	required := func(key string, value string) bool {
		if strings.TrimSpace(value) == "" {
			bad(key, "required")
			return false
		}
		return true
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be a positive duration such as 30s or 5m")
		}
	}

	// server
	if err := checkAddr(c.Server.Addr); err != nil {
		bad("server.addr", "%v", err)
	}
	if required("server.base_url", c.Server.BaseURL) {
		if err := checkOrigin(c.Server.BaseURL); err != nil {
			bad("server.base_url", "%v", err)
		}
	}
	if required("server.session_secret", string(c.Server.SessionSecret)) && len(c.Server.SessionSecret) < 32 {
		bad("server.session_secret", "must be at least 32 bytes (got %d); generate one with: openssl rand -base64 32", len(c.Server.SessionSecret))
	}
	for i, p := range c.Server.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is neither an IP address nor a CIDR range", p)
			}
		}
	}
	positive("server.shutdown_timeout", c.Server.ShutdownTimeout)

	// database
	switch c.Database.Driver {
	case "mysql", "sqlite":
	default:
		bad("database.driver", "must be mysql or sqlite (got %q)", c.Database.Driver)
	}
	required("database.dsn", string(c.Database.DSN))

	// log
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format", "must be json or text (got %q)", c.Log.Format)
	}

	// wecom
	if required("wecom.corp_id", c.WeCom.CorpID) && strings.ContainsAny(c.WeCom.CorpID, " \t/?&#") {
		bad("wecom.corp_id", "contains characters a CorpID never has")
	}
	if c.WeCom.AgentID <= 0 {
		bad("wecom.agent_id", "required: the AgentId of the 微校园助手 app (a positive number)")
	}
	required("wecom.app_secret", string(c.WeCom.AppSecret))
	required("wecom.contacts_secret", string(c.WeCom.ContactsSecret))
	required("wecom.callback_token", string(c.WeCom.CallbackToken))
	if required("wecom.callback_aes_key", string(c.WeCom.CallbackAESKey)) {
		checkAESKey("wecom.callback_aes_key", c.WeCom.CallbackAESKey, bad)
	}
	switch {
	case c.WeCom.ContactsCallbackToken != "" && c.WeCom.ContactsCallbackAESKey == "":
		bad("wecom.contacts_callback_aes_key", "required when wecom.contacts_callback_token is set (set both or neither)")
	case c.WeCom.ContactsCallbackToken == "" && c.WeCom.ContactsCallbackAESKey != "":
		bad("wecom.contacts_callback_token", "required when wecom.contacts_callback_aes_key is set (set both or neither)")
	}
	if c.WeCom.ContactsCallbackAESKey != "" {
		checkAESKey("wecom.contacts_callback_aes_key", c.WeCom.ContactsCallbackAESKey, bad)
	}
	positive("wecom.callback_max_age", c.WeCom.CallbackMaxAge)
	if err := checkAbsURL(c.WeCom.APIBase); err != nil {
		bad("wecom.api_base", "%v", err)
	}
	if err := checkAbsURL(c.WeCom.OAuthBase); err != nil {
		bad("wecom.oauth_base", "%v", err)
	}
	if c.WeCom.VerifyMode != "tfa" && c.WeCom.VerifyMode != "authsucc" {
		bad("wecom.verify_mode", "must be tfa or authsucc (got %q)", c.WeCom.VerifyMode)
	}
	positive("wecom.timeout", c.WeCom.Timeout)
	required("wecom.help_key", c.WeCom.HelpKey)
	if c.WeCom.JoinQRCodeURL != "" {
		if err := checkAbsURL(c.WeCom.JoinQRCodeURL); err != nil {
			bad("wecom.join_qrcode_url", "%v", err)
		}
	}

	// cas
	if required("cas.base_url", c.CAS.BaseURL) {
		if err := checkAbsURL(c.CAS.BaseURL); err != nil {
			bad("cas.base_url", "%v", err)
		}
	}
	if c.CAS.Protocol != 2 && c.CAS.Protocol != 3 {
		bad("cas.protocol", "must be 2 or 3 (got %d)", c.CAS.Protocol)
	}
	required("cas.attributes.name", c.CAS.Attributes.Name)
	required("cas.attributes.type", c.CAS.Attributes.Type)
	positive("cas.timeout", c.CAS.Timeout)

	// identity: app owns the rules; its errors already name the key.
	if _, err := c.IdentityPolicy(); err != nil {
		errs = append(errs, fmt.Errorf("config: %s", oneLine(err.Error())))
	}

	// sms
	switch c.SMS.Provider {
	case "log":
	case "http":
		if required("sms.http.url", c.SMS.HTTP.URL) {
			if err := checkAbsURL(c.SMS.HTTP.URL); err != nil {
				bad("sms.http.url", "%v", err)
			}
		}
		required("sms.http.token", string(c.SMS.HTTP.Token))
	case "tencentcloud":
		t := c.SMS.TencentCloud
		required("sms.tencentcloud.secret_id", string(t.SecretID))
		required("sms.tencentcloud.secret_key", string(t.SecretKey))
		required("sms.tencentcloud.region", t.Region)
		required("sms.tencentcloud.sdk_app_id", t.SDKAppID)
		required("sms.tencentcloud.sign_name", t.SignName)
		required("sms.tencentcloud.template_id", t.TemplateID)
		if strings.Contains(t.Endpoint, "://") {
			if err := checkAbsURL(t.Endpoint); err != nil {
				bad("sms.tencentcloud.endpoint", "%v", err)
			}
		} else if strings.ContainsAny(t.Endpoint, "/ ") {
			bad("sms.tencentcloud.endpoint", "must be a host name such as sms.tencentcloudapi.com")
		}
	default:
		bad("sms.provider", "must be log, http or tencentcloud (got %q)", c.SMS.Provider)
	}
	positive("sms.code_ttl", c.SMS.CodeTTL)
	positive("sms.cooldown", c.SMS.Cooldown)
	positive("sms.ip_window", c.SMS.IPWindow)
	for key, n := range map[string]int{"sms.daily_limit": c.SMS.DailyLimit, "sms.max_attempts": c.SMS.MaxAttempts, "sms.ip_limit": c.SMS.IPLimit} {
		if n <= 0 {
			bad(key, "must be a positive number (got %d)", n)
		}
	}

	// menu: app checks WeCom's limits; its errors name the entry (menu[2].sub_button[0].name).
	if _, err := c.AppMenu(); err != nil {
		errs = append(errs, fmt.Errorf("config: %s", oneLine(err.Error())))
	}

	for _, key := range c.placeholders() {
		bad(key, "still holds the placeholder value from config.yaml.example: fill it in")
	}

	slices.SortStableFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// placeholders lists the keys whose value still contains config.yaml.example's REPLACE-ME marker.
func (c *Config) placeholders() []string {
	var keys []string
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("mapstructure"), ",")
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Struct:
				walk(f, prefix+tag+".")
			case reflect.String:
				if u := strings.ToUpper(f.String()); strings.Contains(u, "REPLACE-ME") || strings.Contains(u, "REPLACEME") {
					keys = append(keys, prefix+tag)
				}
			}
		}
	}
	walk(reflect.ValueOf(*c), "")
	return keys
}

// CheckServe holds the checks that apply to a running service only: the log SMS provider writes
// codes into the log and is for trials, so it needs an explicit sms.allow_log.
func (c *Config) CheckServe() error {
	if c.SMS.Provider == "log" && !c.SMS.AllowLog {
		return errors.New("config: sms.provider: \"log\" writes verification codes into the log; use http or tencentcloud, or set sms.allow_log: true for a trial")
	}
	return nil
}

// IdentityPolicy compiles identity.userid and identity.rules.
func (c *Config) IdentityPolicy() (*app.IdentityPolicy, error) {
	rules := make([]app.IdentityRuleConfig, len(c.Identity.Rules))
	for i, r := range c.Identity.Rules {
		rules[i] = app.IdentityRuleConfig{Type: r.Type, Number: r.Number, Department: r.Department, Label: r.Label}
	}
	return app.NewIdentityPolicy(c.Identity.UserID, rules)
}

// menuCheckOrigin stands in for server.base_url when resolving the menu's relative URLs while
// base_url itself is invalid, so that one mistake is reported once, under its own key.
const menuCheckOrigin = "https://base-url.invalid"

// AppMenu returns the app menu to write: menu: with its relative URLs resolved against
// server.base_url, or app.DefaultMenu when menu: is empty (its help button then carries
// wecom.help_key). It checks WeCom's limits, and that every click button carries wecom.help_key:
// the service answers no other click (CONTRACT §5), so any other key would be a dead button.
func (c *Config) AppMenu() ([]app.MenuButton, error) {
	var buttons []app.MenuButton
	if len(c.Menu) == 0 {
		buttons = app.DefaultMenu()
		if c.WeCom.HelpKey != "" { // else wecom.help_key reports itself
			setHelpKey(buttons, c.WeCom.HelpKey)
		}
	} else {
		for _, b := range c.Menu {
			buttons = append(buttons, b.toApp())
		}
	}
	base := c.Server.BaseURL
	if checkOrigin(base) != nil {
		base = menuCheckOrigin
	}
	menu, err := app.BuildMenu(base, buttons)
	if err != nil {
		return nil, err
	}
	if c.WeCom.HelpKey == "" {
		return menu, nil
	}
	for i, b := range menu {
		if err := checkClickKey(fmt.Sprintf("menu[%d]", i), b, c.WeCom.HelpKey); err != nil {
			return nil, err
		}
		for j, sb := range b.SubButton {
			if err := checkClickKey(fmt.Sprintf("menu[%d].sub_button[%d]", i, j), sb, c.WeCom.HelpKey); err != nil {
				return nil, err
			}
		}
	}
	return menu, nil
}

// setHelpKey gives the click buttons of the default menu the configured help key.
func setHelpKey(buttons []app.MenuButton, key string) {
	for i := range buttons {
		if buttons[i].Type == "click" {
			buttons[i].Key = key
		}
		setHelpKey(buttons[i].SubButton, key)
	}
}

func checkClickKey(path string, b app.MenuButton, helpKey string) error {
	if b.Type == "click" && b.Key != helpKey {
		return fmt.Errorf("%s.key: %q is not answered by wecampus: a click button must use wecom.help_key (%q); use a view button for a link", path, b.Key, helpKey)
	}
	return nil
}

// Secrets returns every non-empty secret value, so that output can be scrubbed of them.
func (c *Config) Secrets() []string {
	var out []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch {
		case v.Type() == secretType:
			if s := v.String(); s != "" {
				out = append(out, s)
				out = append(out, dsnPassword(s)...)
			}
		case v.Kind() == reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		}
	}
	walk(reflect.ValueOf(*c))
	return out
}

// dsnPassword extracts the password of a user:password@... DSN, so that it is scrubbed even when
// a driver error quotes it alone.
func dsnPassword(dsn string) []string {
	at := strings.LastIndex(dsn, "@")
	if at < 0 {
		return nil
	}
	userinfo := dsn[:at]
	if i := strings.Index(userinfo, "://"); i >= 0 {
		userinfo = userinfo[i+3:]
	}
	if _, pw, ok := strings.Cut(userinfo, ":"); ok && len(pw) >= 3 {
		return []string{pw}
	}
	return nil
}

func checkAESKey(key string, v Secret, bad func(key, format string, args ...any)) {
	if !aesKeyPattern.MatchString(string(v)) {
		bad(key, "must be exactly 43 letters and digits, as shown by the WeCom admin console (got %d characters)", len(v))
	}
}

// checkOrigin accepts an absolute http(s) URL without path, query or fragment.
func checkOrigin(s string) error {
	u, err := checkURL(s)
	if err != nil {
		return err
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("must be an origin such as https://wecampus.example.edu.cn, without path or query (got %q)", s)
	}
	return nil
}

func checkAbsURL(s string) error {
	_, err := checkURL(s)
	return err
}

func checkURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("must be an absolute http(s) URL (got %q)", s)
	}
	return u, nil
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port or :port (got %q)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port in %q", addr)
	}
	if host != "" && strings.ContainsAny(host, " /") {
		return fmt.Errorf("invalid host in %q", addr)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be debug, info, warn or error (got %q)", s)
}

// newLogger builds the process logger from log:, masking mobile numbers through app's handler
// (names are masked where they are logged, with app.MaskName).
func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	level, err := parseLevel(c.Level)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(app.NewMaskingHandler(h))
}

// redacted is what a Secret prints as, whatever the verb or encoder.
const redacted = "<redacted>"

// Secret is a configuration value that must never be printed: fmt verbs, slog, JSON and text
// encoders all see "<redacted>". Use Reveal where the value itself is needed.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns "<redacted>".
func (s Secret) String() string { return redacted }

// GoString returns "<redacted>" for %#v.
func (s Secret) GoString() string { return redacted }

// Format prints "<redacted>" for every fmt verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue makes slog print "<redacted>".
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON encodes "<redacted>".
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText encodes "<redacted>" (YAML, TOML and other text encoders).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
