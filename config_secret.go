package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
)

// redacted is what a Secret prints as, whatever the verb or encoder.
const redacted = "<redacted>"

// Secret is a configuration value that must never be printed: fmt verbs, slog, JSON and text
// encoders all see "<redacted>". Use Reveal where the value itself is needed.
type Secret string

var secretType = reflect.TypeFor[Secret]()

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

// Scrub replaces every secret of c in s: driver and upstream errors may quote them. It makes one
// pass, longest match first, so that a short secret is never found inside an earlier
// "<redacted>" or inside a longer secret, and the config key names a message cites stay
// readable even when a secret happens to be part of one (a token "token" in
// wecom.callback_token). A nil c scrubs nothing.
func (c *Config) Scrub(s string) string {
	if c == nil {
		return s
	}
	type pair struct{ old, new string }
	var pairs []pair
	for _, k := range configKeys() {
		pairs = append(pairs, pair{k, k})
	}
	for _, secret := range c.Secrets() {
		pairs = append(pairs, pair{secret, redacted})
	}
	// A secret that equals a key name is still redacted: it sorts before the key.
	slices.SortStableFunc(pairs, func(a, b pair) int {
		if d := len(b.old) - len(a.old); d != 0 {
			return d
		}
		switch {
		case a.new == b.new:
			return 0
		case a.new == redacted:
			return -1
		case b.new == redacted:
			return 1
		}
		return 0
	})
	args := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		args = append(args, p.old, p.new)
	}
	return strings.NewReplacer(args...).Replace(s)
}
