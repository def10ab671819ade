package app

import "strings"

// NormalizeMobile strips spaces, dashes and a +86/0086 prefix and reports whether what remains is
// a mainland mobile number (11 digits starting with 1). A number with another country code
// (+1 650…) is refused, not read as a mainland one.
func NormalizeMobile(raw string) (string, bool) {
	var b strings.Builder
	plus := false
	for _, r := range raw {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= '０' && r <= '９': // full-width digits typed on some phones
			b.WriteRune('0' + (r - '０'))
		case r == ' ' || r == '-' || r == '\u00a0' || r == '\u3000' || r == '(' || r == ')':
		case r == '+' && b.Len() == 0 && !plus:
			plus = true
		default:
			return "", false
		}
	}
	m := b.String()
	switch {
	case len(m) == 13 && strings.HasPrefix(m, "86"):
		m = m[2:]
	case len(m) == 15 && strings.HasPrefix(m, "0086") && !plus:
		m = m[4:]
	case plus:
		return "", false // +<country code> other than +86
	}
	if len(m) != 11 || m[0] != '1' || m[1] < '3' {
		return "", false
	}
	return m, true
}
