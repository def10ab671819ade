package main

import (
	"reflect"
	"strings"
	"time"

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
	Server    ServerConfig    `mapstructure:"server"`
	Database  DatabaseConfig  `mapstructure:"database"`
	Log       LogConfig       `mapstructure:"log"`
	WeCom     WeComConfig     `mapstructure:"wecom"`
	CAS       CASConfig       `mapstructure:"cas"`
	Identity  IdentityConfig  `mapstructure:"identity"`
	SMS       SMSConfig       `mapstructure:"sms"`
	Retention RetentionConfig `mapstructure:"retention"`
	Redis     RedisConfig     `mapstructure:"redis"`
	Menu      []MenuButton    `mapstructure:"menu"`
	Admin     AdminConfig     `mapstructure:"admin"`
}

// ServerConfig is the server: section.
type ServerConfig struct {
	Addr            string        `mapstructure:"addr"`
	BaseURL         string        `mapstructure:"base_url"`
	SessionSecret   Secret        `mapstructure:"session_secret"`
	TrustedProxies  []string      `mapstructure:"trusted_proxies"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	HelpContact     string        `mapstructure:"help_contact"`
	MetricsAddr     string        `mapstructure:"metrics_addr"` // "": /metrics on server.addr
	RateLimit       RateLimit     `mapstructure:"rate_limit"`
}

// RateLimit is server.rate_limit (CONTRACT §6).
type RateLimit struct {
	PerMinute int `mapstructure:"per_minute"` // per client address: requests carrying a CAS ticket or WeCom code
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
	LoginBase              string        `mapstructure:"login_base"`
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
	// PersonAttribute names a CAS attribute holding a stable person id (a hashed ID-card number,
	// 人员编号): when set, 换绑 is offered only between numbers with the same id.
	PersonAttribute string `mapstructure:"person_attribute"`
	// TypeLabels names CAS identity types in Chinese for the member pages (alumni: 校友), on top
	// of app.DefaultTypeLabels. A map: its entries are not config keys of their own.
	TypeLabels map[string]string `mapstructure:"type_labels"`
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

// AdminConfig is the admin: section: who may use the helpdesk console /admin (CONTRACT §9).
type AdminConfig struct {
	Operators []string `mapstructure:"operators"` // WeCom userids who may search, view and act
	Viewers   []string `mapstructure:"viewers"`   // WeCom userids who may search and view only
}

// SMSConfig is the sms: section: the provider and the code limits of CONTRACT §4.
type SMSConfig struct {
	Provider    string        `mapstructure:"provider"`
	AllowLog    bool          `mapstructure:"allow_log"`
	CodeTTL     time.Duration `mapstructure:"code_ttl"`
	Cooldown    time.Duration `mapstructure:"cooldown"`
	DailyLimit  int           `mapstructure:"daily_limit"`
	MaxAttempts int           `mapstructure:"max_attempts"`
	IPLimit     int           `mapstructure:"ip_limit"`
	IPWindow    time.Duration `mapstructure:"ip_window"`
	// MigrateDailyLimit caps the 换绑 codes one requesting number may have sent per day.
	MigrateDailyLimit int        `mapstructure:"migrate_daily_limit"`
	HTTP              SMSHTTP    `mapstructure:"http"`
	TencentCloud      SMSTencent `mapstructure:"tencentcloud"`
}

// RetentionConfig is the retention: section: how long personal data is kept (wecampus purge,
// and hourly in serve).
type RetentionConfig struct {
	UnboundAfter time.Duration `mapstructure:"unbound_after"`
	SMSAfter     time.Duration `mapstructure:"sms_after"`
}

// RedisConfig is the redis: section (CONTRACT §8). It is optional: with addr empty one instance
// keeps its state in the process and the database, as it always did.
type RedisConfig struct {
	Addr      string `mapstructure:"addr"`
	Password  Secret `mapstructure:"password"`
	DB        int    `mapstructure:"db"`
	KeyPrefix string `mapstructure:"key_prefix"`
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
	"server.addr":               ":8080",
	"server.trusted_proxies":    []string{},
	"server.shutdown_timeout":   "15s",
	"server.help_contact":       "",
	"server.metrics_addr":       "",
	"database.driver":           "mysql",
	"log.level":                 "info",
	"log.format":                "json",
	"wecom.callback_max_age":    "5m",
	"wecom.api_base":            "https://qyapi.weixin.qq.com",
	"wecom.oauth_base":          "https://open.weixin.qq.com",
	"wecom.login_base":          "https://login.work.weixin.qq.com",
	"wecom.verify_mode":         "tfa",
	"wecom.timeout":             "5s",
	"wecom.help_key":            "HELP",
	"cas.protocol":              3,
	"cas.attributes.name":       "cn",
	"cas.attributes.type":       "userType",
	"cas.timeout":               "5s",
	"identity.userid":           "{{.Number}}",
	"sms.provider":              "http",
	"sms.allow_log":             false,
	"sms.code_ttl":              "5m",
	"sms.cooldown":              "60s",
	"sms.daily_limit":           10,
	"sms.max_attempts":          5,
	"sms.ip_limit":              200,
	"sms.ip_window":             "1h",
	"sms.migrate_daily_limit":   3,
	"retention.unbound_after":   "8760h",
	"retention.sms_after":       "720h",
	"identity.person_attribute": "",
	"sms.tencentcloud.region":   "ap-guangzhou",
	"redis.addr":                "",
	"redis.db":                  0,
	"redis.key_prefix":          "wecampus:",
	"admin.operators":           []string{},
	"admin.viewers":             []string{},

	"server.rate_limit.per_minute": 300,
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

// mapKey reports whether key is a map-valued key (identity.type_labels), whose entries
// (identity.type_labels.alumni) are values, not keys of their own.
func mapKey(key string) bool {
	for _, f := range configFields() {
		if f.key == key {
			return f.typ.Kind() == reflect.Map
		}
	}
	return false
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
