package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wecampus/wecampus/app"
)

// Each rule about a config value lives in one place. Rules about a value an adapter must parse
// anyway live in that adapter's constructor, which names the config key in its errors
// (wecom.New: the corp id, the two secrets, the agent id and the API bases; callback.New: the
// callback AES keys; cas.New: the CAS base URL and protocol; the SMS providers: their
// settings); validation builds the adapters once with the config and reports what they refuse.
// Everything else is checked here, per section: presence, durations and limits, choices,
// origins and addresses, cross-key rules and placeholders. The identity rules and the menu
// belong to app, which checks them.

// problem is one thing wrong with the config: the key it is about and what is wrong with it.
type problem struct{ key, msg string }

func (p problem) String() string {
	if p.key == "" {
		return "config: " + p.msg
	}
	return "config: " + p.key + ": " + p.msg
}

// problems collects what is wrong with a config.
type problems []problem

func (ps *problems) add(key, format string, args ...any) {
	*ps = append(*ps, problem{key, fmt.Sprintf(format, args...)})
}

// addErr adds the lines of an error whose every line starts with the config key it is about
// ("cas.base_url: must be ...", as the adapters and app report them).
func (ps *problems) addErr(err error) {
	for line := range strings.Lines(err.Error()) {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		key, msg, ok := strings.Cut(line, ": ")
		if !ok || strings.ContainsAny(key, " \t") {
			key, msg = "", line
		}
		*ps = append(*ps, problem{key, msg})
	}
}

// required reports key when value is empty and says whether it is set.
func (ps *problems) required(key, value string) bool {
	if strings.TrimSpace(value) == "" {
		ps.add(key, "required")
		return false
	}
	return true
}

func (ps *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		ps.add(key, "must be a positive duration such as 30s or 5m (got %s)", d)
	}
}

// has reports whether a problem about key, or about a key key is inside of, was found
// (identity.rules covers identity.rules[0].number).
func (ps problems) has(key string) bool {
	return slices.ContainsFunc(ps, func(p problem) bool { return p.key != "" && covers(p.key, key) })
}

// covers reports whether key is outer or a key inside outer.
func covers(outer, key string) bool {
	return key == outer || strings.HasPrefix(key, outer+".") || strings.HasPrefix(key, outer+"[")
}

// mergeProblems returns first, and those of then whose key first has no problem about, so that
// one mistake is reported once, by the check that saw it first.
func mergeProblems(first, then problems) problems {
	out := slices.Clone(first)
	for _, p := range then {
		if p.key == "" || !first.has(p.key) {
			out = append(out, p)
		}
	}
	return out
}

// err returns the problems as one error, one sorted line each; nil when there are none.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	errs := make([]error, len(lines))
	for i, l := range lines {
		errs[i] = errors.New(l)
	}
	return errors.Join(errs...)
}

// Validate checks every key and returns all problems at once, one line each, every line naming
// its key ("config: wecom.agent_id: ...").
func (c *Config) Validate() error { return c.problems().err() }

// problems runs the checks of every section. A key that still holds the example's placeholder
// is reported as that alone.
func (c *Config) problems() problems {
	var ps problems
	for _, key := range c.placeholders() {
		ps.add(key, "still holds the placeholder value from config.yaml.example: fill it in")
	}
	var checks problems
	c.Server.check(&checks)
	c.Database.check(&checks)
	c.Log.check(&checks)
	c.checkWeCom(&checks)
	c.checkCAS(&checks)
	c.checkIdentity(&checks)
	c.checkSMS(&checks)
	c.Retention.check(&checks)
	c.checkRedis(&checks)
	c.checkMenu(&checks)
	c.Admin.check(&checks)
	return mergeProblems(ps, checks)
}

// check refuses a userid on both console lists: which role was meant is unclear.
func (a AdminConfig) check(ps *problems) {
	for _, id := range a.Viewers {
		if slices.ContainsFunc(a.Operators, func(op string) bool { return strings.EqualFold(op, id) }) {
			ps.add("admin.viewers", "%s is also in admin.operators (list a userid once)", id)
		}
	}
}

func (s ServerConfig) check(ps *problems) {
	if err := checkAddr(s.Addr); err != nil {
		ps.add("server.addr", "%v", err)
	}
	if ps.required("server.base_url", s.BaseURL) {
		if err := checkOrigin(s.BaseURL); err != nil {
			ps.add("server.base_url", "%v", err)
		}
	}
	if n := len(s.SessionSecret); ps.required("server.session_secret", s.SessionSecret.Reveal()) && n < 32 {
		ps.add("server.session_secret", "must be at least 32 bytes (got %d); generate one with: openssl rand -base64 32", n)
	}
	for i, p := range s.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				ps.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is neither an IP address nor a CIDR range", p)
			}
		}
	}
	ps.positive("server.shutdown_timeout", s.ShutdownTimeout)
	if s.RateLimit.PerMinute < 1 {
		ps.add("server.rate_limit.per_minute", "must be at least 1 (got %d)", s.RateLimit.PerMinute)
	}
	if s.MetricsAddr != "" {
		if err := checkAddr(s.MetricsAddr); err != nil {
			ps.add("server.metrics_addr", "%v", err)
		} else if s.MetricsAddr == s.Addr && !strings.HasSuffix(s.Addr, ":0") {
			ps.add("server.metrics_addr", "must differ from server.addr (%s)", s.Addr)
		}
	}
}

func (d DatabaseConfig) check(ps *problems) {
	switch d.Driver {
	case "mysql", "sqlite":
	default:
		ps.add("database.driver", "must be mysql or sqlite (got %q)", d.Driver)
	}
	ps.required("database.dsn", d.DSN.Reveal())
}

func (l LogConfig) check(ps *problems) {
	if _, err := parseLevel(l.Level); err != nil {
		ps.add("log.level", "%v", err)
	}
	if l.Format != "json" && l.Format != "text" {
		ps.add("log.format", "must be json or text (got %q)", l.Format)
	}
}

// checkWeCom checks wecom:. The API client and the callback codecs check what they consume.
func (c *Config) checkWeCom(ps *problems) {
	w := c.WeCom
	if _, err := newWeComClient(c, nil, nil); err != nil {
		ps.addErr(err)
	}
	ps.required("wecom.callback_token", w.CallbackToken.Reveal())
	ps.required("wecom.callback_aes_key", w.CallbackAESKey.Reveal())
	switch {
	case w.ContactsCallbackToken != "" && w.ContactsCallbackAESKey == "":
		ps.add("wecom.contacts_callback_aes_key", "required when wecom.contacts_callback_token is set (set both or neither)")
	case w.ContactsCallbackToken == "" && w.ContactsCallbackAESKey != "":
		ps.add("wecom.contacts_callback_token", "required when wecom.contacts_callback_aes_key is set (set both or neither)")
	}
	// The codecs are built only from present values: their own errors name the AES key.
	if !slices.ContainsFunc([]string{"wecom.corp_id", "wecom.callback_token", "wecom.callback_aes_key",
		"wecom.contacts_callback_token", "wecom.contacts_callback_aes_key"}, ps.has) {
		if _, _, err := newCodecs(w); err != nil {
			ps.addErr(err)
		}
	}
	ps.positive("wecom.callback_max_age", w.CallbackMaxAge)
	if m := app.VerifyMode(w.VerifyMode); m != app.VerifyTfa && m != app.VerifyAuthSucc {
		ps.add("wecom.verify_mode", "must be tfa or authsucc (got %q)", w.VerifyMode)
	}
	ps.positive("wecom.timeout", w.Timeout)
	ps.required("wecom.help_key", w.HelpKey)
	if w.JoinQRCodeURL != "" {
		if _, err := checkURL(w.JoinQRCodeURL); err != nil {
			ps.add("wecom.join_qrcode_url", "%v", err)
		}
	}
}

// checkCAS checks cas:. The CAS client checks its base URL and protocol.
func (c *Config) checkCAS(ps *problems) {
	if _, err := newCASClient(c, nil); err != nil {
		ps.addErr(err)
	}
	ps.required("cas.attributes.name", c.CAS.Attributes.Name)
	ps.required("cas.attributes.type", c.CAS.Attributes.Type)
	ps.positive("cas.timeout", c.CAS.Timeout)
}

// checkIdentity reports what app finds wrong with identity:; its errors name the key.
func (c *Config) checkIdentity(ps *problems) {
	if _, err := c.IdentityPolicy(); err != nil {
		ps.addErr(errors.New(oneLine(err.Error())))
	}
}

// checkSMS checks sms:. The provider checks its own settings.
func (c *Config) checkSMS(ps *problems) {
	if _, err := newSMS(c, slog.New(slog.DiscardHandler)); err != nil {
		ps.addErr(err)
	}
	if c.SMS.Provider == "tencentcloud" {
		ps.required("sms.tencentcloud.region", c.SMS.TencentCloud.Region)
	}
	ps.positive("sms.code_ttl", c.SMS.CodeTTL)
	ps.positive("sms.cooldown", c.SMS.Cooldown)
	ps.positive("sms.ip_window", c.SMS.IPWindow)
	for _, l := range []struct {
		key string
		n   int
	}{{"sms.daily_limit", c.SMS.DailyLimit}, {"sms.max_attempts", c.SMS.MaxAttempts}, {"sms.ip_limit", c.SMS.IPLimit},
		{"sms.migrate_daily_limit", c.SMS.MigrateDailyLimit}} {
		if l.n <= 0 {
			ps.add(l.key, "must be a positive number (got %d)", l.n)
		}
	}
}

func (r RetentionConfig) check(ps *problems) {
	ps.positive("retention.unbound_after", r.UnboundAfter)
	ps.positive("retention.sms_after", r.SMSAfter)
}

// checkRedis reports what the redis adapter finds wrong with redis:.
func (c *Config) checkRedis(ps *problems) {
	if err := redisConfig(c).Validate(); err != nil {
		ps.addErr(err)
	}
}

// checkMenu reports what app finds wrong with menu: (WeCom's limits, the help key); its errors
// name the entry (menu[2].sub_button[0].name). A bad server.base_url is reported once, under its
// own key.
func (c *Config) checkMenu(ps *problems) {
	base := c.Server.BaseURL
	if checkOrigin(base) != nil {
		base = menuCheckOrigin
	}
	if _, err := app.AppMenu(base, c.WeCom.HelpKey, c.appButtons()); err != nil {
		ps.addErr(errors.New(oneLine(err.Error())))
	}
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

// IdentityPolicy compiles identity.userid, identity.rules and identity.type_labels.
func (c *Config) IdentityPolicy() (*app.IdentityPolicy, error) {
	rules := make([]app.IdentityRuleConfig, len(c.Identity.Rules))
	for i, r := range c.Identity.Rules {
		rules[i] = app.IdentityRuleConfig{Type: r.Type, Number: r.Number, Department: r.Department, Label: r.Label}
	}
	p, err := app.NewIdentityPolicy(c.Identity.UserID, rules)
	if err != nil {
		return nil, err
	}
	if err := p.SetTypeLabels(c.Identity.TypeLabels); err != nil {
		return nil, err
	}
	return p, nil
}

// menuCheckOrigin stands in for server.base_url when resolving the menu's relative URLs while
// base_url itself is invalid, so that one mistake is reported once, under its own key.
const menuCheckOrigin = "https://base-url.invalid"

// AppMenu returns the app menu to write: menu: (or app.DefaultMenu) resolved against
// server.base_url and checked by app.AppMenu.
func (c *Config) AppMenu() ([]app.MenuButton, error) {
	return app.AppMenu(c.Server.BaseURL, c.WeCom.HelpKey, c.appButtons())
}

// appButtons converts menu: to app's buttons.
func (c *Config) appButtons() []app.MenuButton {
	var buttons []app.MenuButton
	for _, b := range c.Menu {
		buttons = append(buttons, b.toApp())
	}
	return buttons
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
