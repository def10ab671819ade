package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
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
// To add a section, add a field with a mapstructure tag here, its defaults to configDefaults, its
// checks to config_validate.go, and its keys to config.yaml.example and README.md; the env
// bindings are derived from this struct, and TestExampleDocumentsEveryKey catches omissions.
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

// configField is one leaf key of Config and the Go type it decodes into.
type configField struct {
	key string
	typ reflect.Type
}

// configFields lists every leaf key of Config ("server.addr", "identity.rules", ...), derived from
// the mapstructure tags so that a new field is bound to its env variable automatically.
func configFields() []configField {
	var fields []configField
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
			fields = append(fields, configField{key, f.Type})
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return fields
}

// configKeys lists every leaf key of Config.
func configKeys() []string {
	var keys []string
	for _, f := range configFields() {
		keys = append(keys, f.key)
	}
	return keys
}

// envName returns the environment variable that overrides key.
func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// LoadConfig reads the YAML file at path (none when path is ""), applies the environment
// overrides and defaults, decodes strictly and validates. It reports every problem at once, one
// line each naming its key ("config: wecom.agent_id: ..."): unknown keys, values that do not
// decode and failed checks alike. Unless the file cannot be read at all, it also returns what
// it decoded, so that the caller can scrub the secrets it holds from later output.
func LoadConfig(path string) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for _, key := range configKeys() {
		// Unmarshal only sees keys viper already knows (spf13/viper#761): give every key a
		// default or an explicit env binding.
		if d, ok := configDefaults[key]; ok {
			v.SetDefault(key, d)
		} else if err := v.BindEnv(key); err != nil {
			return nil, fmt.Errorf("config: bind %s: %w", key, err)
		}
	}
	if path != "" {
		if err := readConfigFile(v, path); err != nil {
			return nil, err
		}
	}
	found := unknownKeys(v)
	var cfg Config
	hook := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		secretHook,
		jsonListHook,
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	))
	if err := v.UnmarshalExact(&cfg, hook); err != nil {
		found = append(found, decodeProblems(err, v)...)
	}
	cfg.normalize()
	// A value that did not decode is left zero: its checks would only repeat the problem.
	return &cfg, mergeProblems(found, cfg.problems()).err()
}

// readConfigFile reads path into v; its errors say what to do about them.
func readConfigFile(v *viper.Viper, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return openError(err)
	}
	defer f.Close()
	if err := v.ReadConfig(f); err != nil {
		return fmt.Errorf("config: %s: %s", path, oneLine(err.Error()))
	}
	return nil
}

// openError explains why the config file could not be opened.
func openError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("config: %w (name the file with --config or WECAMPUS_CONFIG)", err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("config: %w (the file exists but this user may not read it: check its owner and permissions)", err)
	}
	return fmt.Errorf("config: %w", err)
}

// unknownKeys reports the keys of the file (or the environment) that Config does not have,
// suggesting the key that was probably meant. Their values are not echoed: a misspelt key may
// hold a secret.
func unknownKeys(v *viper.Viper) []problem {
	known := configKeys()
	var out []problem
	for _, key := range v.AllKeys() {
		if slices.Contains(known, key) || slices.ContainsFunc(known, func(k string) bool { return strings.HasPrefix(k, key+".") }) {
			continue
		}
		msg := "unknown key"
		if guess := closestKey(key, known); guess != "" {
			msg += " (did you mean " + guess + "?)"
		}
		out = append(out, problem{key, msg})
	}
	return out
}

// closestKey returns the known key within two edits of key, or "".
func closestKey(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// decodeProblems turns mapstructure's errors into one problem per key, each echoing the value
// that did not decode (never a secret's).
func decodeProblems(err error, v *viper.Viper) []problem {
	types := map[string]reflect.Type{}
	for _, f := range configFields() {
		types[f.key] = f.typ
	}
	var out []problem
	var walk func(err error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		de, ok := err.(*mapstructure.DecodeError)
		if !ok {
			if inner := errors.Unwrap(err); inner != nil {
				walk(inner) // "decoding failed due to the following error(s)"
			} else {
				out = append(out, problem{"", oneLine(err.Error())})
			}
			return
		}
		inner := de.Unwrap()
		if _, ok := inner.(interface{ Unwrap() []error }); ok {
			walk(inner)
			return
		}
		if _, ok := inner.(*mapstructure.DecodeError); ok {
			walk(inner)
			return
		}
		out = append(out, decodeProblem(de.Name(), inner, types[de.Name()], v)...)
	}
	walk(err)
	return out
}

// decodeProblem describes why the value of key did not decode into typ (nil when key is inside
// a list entry).
func decodeProblem(key string, err error, typ reflect.Type, v *viper.Viper) []problem {
	if rest, ok := strings.CutPrefix(err.Error(), "has invalid keys: "); ok {
		// Keys inside list entries (identity.rules[0].dept); unknownKeys reports the others.
		if !strings.Contains(key, "[") {
			return nil
		}
		var out []problem
		for _, k := range strings.Split(rest, ", ") {
			out = append(out, problem{key + "." + k, "unknown key"})
		}
		return out
	}
	if typ == secretType {
		return []problem{{key, "must be a single text value"}}
	}
	msg := err.Error()
	switch {
	case typ == reflect.TypeFor[time.Duration]():
		msg = "must be a duration such as 30s, 5m or 1h"
	case typ != nil && (typ.Kind() == reflect.Int || typ.Kind() == reflect.Int64):
		msg = "must be a whole number"
	case typ != nil && typ.Kind() == reflect.Bool:
		msg = "must be true or false"
	}
	if typ != nil {
		msg += fmt.Sprintf(" (got %s)", echo(v.Get(key)))
	}
	return []problem{{key, oneLine(msg)}}
}

// echo prints a value from the config the way its author wrote it.
func echo(val any) string {
	if s, ok := val.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	b, err := json.Marshal(val)
	if err != nil {
		return fmt.Sprint(val)
	}
	return string(b)
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
