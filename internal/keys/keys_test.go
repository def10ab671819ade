package keys

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestDeriveStable pins the derivation: SMS code hashes already stored in a database were keyed
// with these bytes, so a change here would make every outstanding code fail.
func TestDeriveStable(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	got := hex.EncodeToString(Derive(secret, SMSCode))
	const want = "d479267698228bfba6ffeb348caaef83cdd9ce30ca5c8f8862ab0eef54682b51" // the value main's deriveKey gave before this package existed
	if got != want {
		t.Errorf("Derive(%q, %q) = %s, want %s", secret, SMSCode, got, want)
	}
}

func TestDerivePurposesDiffer(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	seen := map[string]string{}
	for _, p := range []string{SMSCode, CSRF, FlowHash, FlowBlock, PersonID, AdminHash, AdminBlock} {
		k := Derive(secret, p)
		if len(k) != 32 {
			t.Errorf("%s: %d bytes, want 32", p, len(k))
		}
		if other, ok := seen[string(k)]; ok {
			t.Errorf("%s and %s derive the same key", p, other)
		}
		seen[string(k)] = p
	}
	if bytes.Equal(Derive(secret, SMSCode), Derive(secret+"x", SMSCode)) {
		t.Error("the key does not depend on the secret")
	}
}
