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
)

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
		jsonMapHook,
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
		if slices.Contains(known, key) || slices.ContainsFunc(known, func(k string) bool {
			return strings.HasPrefix(k, key+".") || (strings.HasPrefix(key, k+".") && mapKey(k))
		}) {
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

// jsonMapHook lets a map (identity.type_labels) come from the environment as a JSON object:
// WECAMPUS_IDENTITY_TYPE_LABELS='{"alumni":"校友"}'.
func jsonMapHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Map {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if s == "" {
		return map[string]any{}, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("expected a JSON object: %w", err)
	}
	return m, nil
}

// normalize trims what admins commonly leave around values.
func (c *Config) normalize() {
	c.Server.BaseURL = strings.TrimRight(strings.TrimSpace(c.Server.BaseURL), "/")
	c.CAS.BaseURL = strings.TrimRight(strings.TrimSpace(c.CAS.BaseURL), "/")
	c.WeCom.APIBase = strings.TrimRight(strings.TrimSpace(c.WeCom.APIBase), "/")
	c.WeCom.OAuthBase = strings.TrimRight(strings.TrimSpace(c.WeCom.OAuthBase), "/")
	c.WeCom.LoginBase = strings.TrimRight(strings.TrimSpace(c.WeCom.LoginBase), "/")
	c.Admin.Operators = trimList(c.Admin.Operators)
	c.Admin.Viewers = trimList(c.Admin.Viewers)
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

// trimList drops blanks around and between list items (a userid list from the environment is
// comma-separated).
func trimList(list []string) []string {
	out := list[:0]
	for _, v := range list {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
