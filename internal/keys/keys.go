// Package keys derives the service's purpose-specific keys from server.session_secret, so that
// one secret in the config never serves two purposes directly. main (the SMS code hash) and
// handlers (flow cookies, CSRF) both derive their keys here.
package keys

import "crypto/sha256"

// Purposes the service derives keys for. A new purpose gets a new name; an existing name must
// never change meaning: the SMS code hashes stored in the database depend on theirs.
const (
	SMSCode    = "sms-code"    // keys the hash of stored SMS codes (app.SMSPolicy.Secret)
	CSRF       = "csrf"        // gorilla/csrf's cookie key
	FlowHash   = "flow-hash"   // authenticates the flow cookie
	FlowBlock  = "flow-block"  // encrypts the flow cookie
	PersonID   = "person-id"   // keys the hash of CAS person ids (app.Service.PersonIDKey)
	AdminHash  = "admin-hash"  // authenticates the console's sign-in and flash cookies
	AdminBlock = "admin-block" // encrypts them
)

// Derive returns the 32-byte key for purpose: SHA-256 of "wecampus/" + purpose + NUL + secret.
// The secret is at least 32 random bytes (config validation), so a hash with a purpose label is
// a sound derivation, and the output for an existing purpose never changes.
func Derive(secret, purpose string) []byte {
	sum := sha256.Sum256([]byte("wecampus/" + purpose + "\x00" + secret))
	return sum[:]
}
