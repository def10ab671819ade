package app

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// Bounds on what a CAS server may hand us. CAS attributes are free text of any length; what goes
// into the flow cookie, the database and WeCom is capped here, once.
const (
	maxNumberLen   = 64  // bindings.number; a longer CAS user is refused
	maxNameRunes   = 64  // WeCom's limit for a member name (60112)
	maxTypeRunes   = 32  // bindings.type; no identity rule has a longer type
	maxPersonIDLen = 256 // person_attribute, before hashing
)

// personFrom checks and caps a CAS identity: a number that cannot be stored is refused; a
// longer name is cut to WeCom's limit (the page says so); invalid UTF-8 is replaced.
func personFrom(id CASIdentity) (CASIdentity, bool, error) {
	if len(id.Number) > maxNumberLen || !utf8.ValidString(id.Number) {
		return id, false, Errorf(EFORBIDDEN, "统一身份认证返回的学号/工号过长或格式无效，无法办理绑定。请联系学校信息化管理部门。")
	}
	id.Name = strings.ToValidUTF8(strings.TrimSpace(id.Name), "�")
	id.Type = truncateRunes(strings.ToValidUTF8(id.Type, "�"), maxTypeRunes)
	if len(id.PersonID) > maxPersonIDLen {
		id.PersonID = "" // not a usable id: 换绑 is then not offered
	}
	cut := utf8.RuneCountInString(id.Name) > maxNameRunes
	id.Name = truncateRunes(id.Name, maxNameRunes)
	return id, cut, nil
}

func truncateRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// personKey is the stored form of a person id (identity.person_attribute): a keyed hash, so the
// database never holds an ID-card number or the like. "" when the gate is off or the id missing.
func (s *Service) personKey(personID string) string {
	if len(s.PersonIDKey) == 0 || personID == "" {
		return ""
	}
	m := hmac.New(sha256.New, s.PersonIDKey)
	m.Write([]byte(personID))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// samePerson reports whether holder is an earlier binding of the person (name, key) with another
// number — the only case where 换绑 is offered. With identity.person_attribute configured the
// person ids must match; names are not proof (two students may share one). Without it, equal
// names are all there is.
func (s *Service) samePerson(name, key, number string, holder *Binding) bool {
	if holder.Number == number {
		return false
	}
	if len(s.PersonIDKey) > 0 {
		return key != "" && subtle.ConstantTimeCompare([]byte(key), []byte(holder.PersonKey)) == 1
	}
	return holder.Name == name
}
