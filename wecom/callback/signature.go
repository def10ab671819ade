package callback

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
)

// sigLen is the length of a msg_signature: hex of a SHA-1.
const sigLen = 2 * sha1.Size

// signature computes WeCom's msg_signature: the lower-case hex SHA-1 of token, timestamp, nonce
// and data (echostr or Encrypt), sorted bytewise and concatenated without separator
// (加解密方案说明, https://developer.work.weixin.qq.com/document/path/90968). buf is scratch space
// for the concatenation; the grown buffer is returned for reuse.
func signature[T text](buf []byte, token, timestamp, nonce string, data T) (sig [sigLen]byte, grown []byte) {
	a, b, c := token, timestamp, nonce
	if b < a {
		a, b = b, a
	}
	if c < b {
		b, c = c, b
		if b < a {
			a, b = b, a
		}
	}
	// Equal strings concatenate the same either way, so ties need no care.
	p := buf[:0]
	switch {
	case string(data) <= a:
		p = append(append(append(append(p, data...), a...), b...), c...)
	case string(data) <= b:
		p = append(append(append(append(p, a...), data...), b...), c...)
	case string(data) <= c:
		p = append(append(append(append(p, a...), b...), data...), c...)
	default:
		p = append(append(append(append(p, a...), b...), c...), data...)
	}
	sum := sha1.Sum(p)
	hex.Encode(sig[:], sum[:])
	return sig, p
}

// signatureOK reports in constant time whether got is the signature of the four strings.
func signatureOK[T text](buf []byte, got, token, timestamp, nonce string, data T) (ok bool, grown []byte) {
	want, buf := signature(buf, token, timestamp, nonce, data)
	if len(got) != sigLen {
		return false, buf
	}
	var g [sigLen]byte
	copy(g[:], got)
	return subtle.ConstantTimeCompare(want[:], g[:]) == 1, buf
}
