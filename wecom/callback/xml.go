package callback

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"
)

// This file holds the small XML scanner used on the callback hot path instead of encoding/xml,
// which costs most of a callback's time in reflection and allocations. WeCom only sends one shape,
// a flat root with text children:
//
//	<xml><ToUserName><![CDATA[ww…]]></ToUserName><CreateTime>1700000000</CreateTime>…</xml>
//
// The scanner accepts a strict subset of XML 1.0: an optional UTF-8 BOM, an optional XML
// declaration (version 1.0, encoding UTF-8 if any, standalone yes or no if any; whitespace may
// surround it, since a proxy may add one with a line break), whitespace and comments around the
// root element <xml>, child elements whose content is character data, CDATA sections, the five
// predefined entities and numeric character references, comments, and nested unknown elements
// (skipped, at most maxDepth deep). It refuses DOCTYPEs, every other processing instruction (and
// a declaration anywhere but first, or one declaring another version or encoding), namespace
// prefixes, non-ASCII element names, text other than whitespace between elements, and anything
// after the root. On every document it accepts, the
// values it yields equal what encoding/xml yields (xml_test.go checks this differentially), with
// one deliberate leniency: it does not reject characters XML 1.0 forbids (C0 controls, invalid
// UTF-8) inside text, so one odd character in a member's message does not lose the whole event.
//
// The scanner is generic over string and []byte so that values are sub-slices of the input: a
// request body is scanned as []byte without a copy, and a decrypted plaintext is converted to a
// string once so that every field of the resulting app.Inbound shares that one allocation.

// text is the input of the scanner: a request body ([]byte) or a decrypted plaintext (string).
type text interface{ ~string | ~[]byte }

// maxDepth bounds the nesting of skipped unknown elements (the root is depth 0).
const maxDepth = 16

// Scanner errors; callers wrap them in ErrMalformed. They never quote the input, which may hold
// personal data.
var (
	errEOF        = errors.New("xml: unexpected end of input")
	errRoot       = errors.New("xml: root element is not <xml>")
	errTag        = errors.New("xml: malformed tag")
	errEndTag     = errors.New("xml: mismatched end tag")
	errText       = errors.New("xml: text outside an element")
	errEntity     = errors.New("xml: invalid entity or character reference")
	errCDATAEnd   = errors.New("xml: unescaped ]]> in text")
	errComment    = errors.New("xml: malformed comment")
	errMarkup     = errors.New("xml: unsupported markup (DOCTYPE, processing instruction)")
	errDecl       = errors.New("xml: malformed or unsupported XML declaration (want version 1.0, UTF-8)")
	errDepth      = errors.New("xml: elements nested too deep")
	errTrailing   = errors.New("xml: content after the root element")
	errChildField = errors.New("xml: a known field has child elements")
	errDuplicate  = errors.New("xml: duplicate field")
	errTooLong    = errors.New("xml: field too long")
)

// scanner walks the direct children of the <xml> root of src.
type scanner[T text] struct {
	src  T
	pos  int
	done bool // the root's end tag (or a self-closing root) has been consumed
}

// indexByte is strings.IndexByte / bytes.IndexByte for either input type.
func indexByte[T text](s T, c byte) int {
	switch v := any(s).(type) {
	case string:
		return strings.IndexByte(v, c)
	case []byte:
		return bytes.IndexByte(v, c)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// index returns the index of the first sub in s, or -1.
func index[T text](s T, sub string) int {
	switch v := any(s).(type) {
	case string:
		return strings.Index(v, sub)
	case []byte:
		// Search for the first byte, then compare the rest: bytes.Index would need []byte(sub).
		for i := 0; ; {
			j := bytes.IndexByte(v[i:], sub[0])
			if j < 0 {
				return -1
			}
			i += j
			if len(v)-i < len(sub) {
				return -1
			}
			if string(v[i:i+len(sub)]) == sub {
				return i
			}
			i++
		}
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		if string(s[i:i+len(sub)]) == sub {
			return i
		}
	}
	return -1
}

// hasPrefixAt reports whether s[i:] starts with p.
func hasPrefixAt[T text](s T, i int, p string) bool {
	return len(s)-i >= len(p) && string(s[i:i+len(p)]) == p
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// nameChar classifies bytes of element and attribute names: 1 may start a name, 2 may follow.
var nameChar = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_':
			t[c] = 1 | 2
		case '0' <= c && c <= '9' || c == '-' || c == '.':
			t[c] = 2
		}
	}
	return t
}()

func (s *scanner[T]) skipSpace() {
	for s.pos < len(s.src) && isSpace(s.src[s.pos]) {
		s.pos++
	}
}

// open consumes everything up to and including the root start tag.
func (s *scanner[T]) open() error {
	if hasPrefixAt(s.src, 0, "\xef\xbb\xbf") {
		s.pos = 3
	}
	s.skipSpace()
	if hasPrefixAt(s.src, s.pos, "<?xml") {
		if err := s.declaration(); err != nil {
			return err
		}
	}
	for {
		s.skipSpace()
		if !hasPrefixAt(s.src, s.pos, "<!--") {
			break
		}
		if err := s.comment(); err != nil {
			return err
		}
	}
	if s.pos >= len(s.src) {
		return errEOF
	}
	if s.src[s.pos] != '<' {
		return errText
	}
	if hasPrefixAt(s.src, s.pos, "<!") || hasPrefixAt(s.src, s.pos, "<?") {
		return errMarkup
	}
	name, selfClosing, err := s.startTag()
	if err != nil {
		return err
	}
	if string(name) != "xml" {
		return errRoot
	}
	if selfClosing {
		return s.finish()
	}
	return nil
}

// declaration consumes the XML declaration at s.pos:
//
//	<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
//
// with encoding and standalone optional but in that order, either quote, and whitespace around
// '=' (XML 1.0 §2.8). The content is read as UTF-8, so another encoding is refused rather than
// misread. "<?xml-stylesheet", "<?xmlfoo" and the like are other processing instructions:
// errMarkup.
func (s *scanner[T]) declaration() error {
	s.pos += len("<?xml")
	if s.pos < len(s.src) && nameChar[s.src[s.pos]]&2 != 0 {
		return errMarkup
	}
	for i, attr := range [...]string{"version", "encoding", "standalone"} {
		start := s.pos
		s.skipSpace()
		if s.pos == start || !hasPrefixAt(s.src, s.pos, attr) {
			if i == 0 { // version is required
				return errDecl
			}
			s.pos = start
			continue
		}
		s.pos += len(attr)
		v, err := s.declValue()
		if err != nil {
			return err
		}
		var ok bool
		switch i {
		case 0:
			ok = string(v) == "1.0"
		case 1:
			ok = len(v) == 5 && v[0]|0x20 == 'u' && v[1]|0x20 == 't' && v[2]|0x20 == 'f' && string(v[3:]) == "-8"
		case 2:
			ok = string(v) == "yes" || string(v) == "no"
		}
		if !ok {
			return errDecl
		}
	}
	s.skipSpace()
	if !hasPrefixAt(s.src, s.pos, "?>") {
		return errDecl
	}
	s.pos += len("?>")
	return nil
}

// declValue consumes `= "value"` (or single quotes, whitespace around '=') of a declaration's
// pseudo-attribute and returns the value.
func (s *scanner[T]) declValue() (T, error) {
	s.skipSpace()
	if s.pos >= len(s.src) || s.src[s.pos] != '=' {
		return s.src[:0], errDecl
	}
	s.pos++
	s.skipSpace()
	if s.pos >= len(s.src) || s.src[s.pos] != '"' && s.src[s.pos] != '\'' {
		return s.src[:0], errDecl
	}
	q := s.src[s.pos]
	s.pos++
	end := indexByte(s.src[s.pos:], q)
	if end < 0 {
		return s.src[:0], errDecl
	}
	v := s.src[s.pos : s.pos+end]
	s.pos += end + 1
	return v, nil
}

// finish marks the root closed and checks that only whitespace follows it.
func (s *scanner[T]) finish() error {
	s.done = true
	s.skipSpace()
	if s.pos != len(s.src) {
		return errTrailing
	}
	return nil
}

// next returns the next child of the root: its name, its text value (CDATA sections and decoded
// character data concatenated), and whether it had child elements (its value is then empty).
// ok is false after the root's end tag.
func (s *scanner[T]) next() (name, value T, nested, ok bool, err error) {
	for !s.done {
		s.skipSpace()
		if s.pos >= len(s.src) {
			return name, value, false, false, errEOF
		}
		if s.src[s.pos] != '<' {
			return name, value, false, false, errText
		}
		switch {
		case hasPrefixAt(s.src, s.pos, "</"):
			end, err := s.endTag()
			if err != nil {
				return name, value, false, false, err
			}
			if string(end) != "xml" {
				return name, value, false, false, errEndTag
			}
			return name, value, false, false, s.finish()
		case hasPrefixAt(s.src, s.pos, "<!--"):
			if err := s.comment(); err != nil {
				return name, value, false, false, err
			}
			continue
		case hasPrefixAt(s.src, s.pos, "<!"), hasPrefixAt(s.src, s.pos, "<?"):
			return name, value, false, false, errMarkup
		}
		var selfClosing bool
		name, selfClosing, err = s.startTag()
		if err != nil {
			return name, value, false, false, err
		}
		if selfClosing {
			return name, s.src[s.pos:s.pos], false, true, nil
		}
		value, nested, err = s.content(name, 1)
		return name, value, nested, err == nil, err
	}
	return name, value, false, false, nil
}

// startTag consumes "<Name attr='v' …>" or "…/>" at s.pos.
func (s *scanner[T]) startTag() (name T, selfClosing bool, err error) {
	s.pos++ // '<'
	name, err = s.name()
	if err != nil {
		return name, false, err
	}
	for {
		hadSpace := s.pos < len(s.src) && isSpace(s.src[s.pos])
		s.skipSpace()
		if s.pos >= len(s.src) {
			return name, false, errEOF
		}
		switch c := s.src[s.pos]; {
		case c == '>':
			s.pos++
			return name, false, nil
		case c == '/':
			if !hasPrefixAt(s.src, s.pos, "/>") {
				return name, false, errTag
			}
			s.pos += 2
			return name, true, nil
		case !hadSpace:
			return name, false, errTag
		}
		if err := s.attribute(); err != nil {
			return name, false, err
		}
	}
}

// attribute consumes name="value" (or single quotes) and validates the value's entities.
func (s *scanner[T]) attribute() error {
	if _, err := s.name(); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos >= len(s.src) || s.src[s.pos] != '=' {
		return errTag
	}
	s.pos++
	s.skipSpace()
	if s.pos >= len(s.src) {
		return errEOF
	}
	q := s.src[s.pos]
	if q != '"' && q != '\'' {
		return errTag
	}
	s.pos++
	end := indexByte(s.src[s.pos:], q)
	if end < 0 {
		return errEOF
	}
	v := s.src[s.pos : s.pos+end]
	if indexByte(v, '<') >= 0 {
		return errTag
	}
	if _, err := checkText(v); err != nil {
		return err
	}
	s.pos += end + 1
	return nil
}

// name consumes an element or attribute name: ASCII letters, digits, '_', '-', '.'.
func (s *scanner[T]) name() (T, error) {
	start := s.pos
	if s.pos >= len(s.src) {
		return s.src[start:start], errEOF
	}
	if nameChar[s.src[s.pos]]&1 == 0 {
		return s.src[start:start], errTag
	}
	s.pos++
	for s.pos < len(s.src) && nameChar[s.src[s.pos]]&2 != 0 {
		s.pos++
	}
	return s.src[start:s.pos], nil
}

// endTag consumes "</Name>" at s.pos and returns Name.
func (s *scanner[T]) endTag() (T, error) {
	s.pos += 2 // "</"
	name, err := s.name()
	if err != nil {
		return name, err
	}
	s.skipSpace()
	if s.pos >= len(s.src) {
		return name, errEOF
	}
	if s.src[s.pos] != '>' {
		return name, errTag
	}
	s.pos++
	return name, nil
}

// comment consumes "<!-- … -->" at s.pos. As in encoding/xml, "--" may only end the comment.
func (s *scanner[T]) comment() error {
	s.pos += 4 // "<!--"
	i := index(s.src[s.pos:], "--")
	if i < 0 || s.pos+i+2 >= len(s.src) {
		return errEOF
	}
	if s.src[s.pos+i+2] != '>' {
		return errComment
	}
	s.pos += i + 3
	return nil
}

// content consumes the content and end tag of the element name, whose start tag has just been
// read, at the given depth. It returns the element's text (a sub-slice of the input unless it had
// to be decoded) and whether the element had children.
func (s *scanner[T]) content(name T, depth int) (value T, nested bool, err error) {
	if depth > maxDepth {
		return value, false, errDepth
	}
	start := s.pos
	pieces := 0
	decode := false // a piece holds entities or carriage returns, or there are several pieces
	var first T
	for {
		if s.pos >= len(s.src) {
			return value, false, errEOF
		}
		if s.src[s.pos] != '<' {
			end := indexByte(s.src[s.pos:], '<')
			if end < 0 {
				return value, false, errEOF
			}
			run := s.src[s.pos : s.pos+end]
			work, err := checkText(run)
			if err != nil {
				return value, false, err
			}
			decode = decode || work
			first = run
			pieces++
			s.pos += end
			continue
		}
		switch {
		case hasPrefixAt(s.src, s.pos, "<![CDATA["):
			body := s.pos + len("<![CDATA[")
			end := index(s.src[body:], "]]>")
			if end < 0 {
				return value, false, errEOF
			}
			data := s.src[body : body+end]
			decode = decode || indexByte(data, '\r') >= 0
			first = data
			pieces++
			s.pos = body + end + len("]]>")
		case hasPrefixAt(s.src, s.pos, "</"):
			stop := s.pos
			if err := s.closeTag(name); err != nil {
				return value, false, err
			}
			switch {
			case nested:
				return s.src[stop:stop], true, nil
			case pieces == 0:
				return s.src[stop:stop], false, nil
			case pieces == 1 && !decode:
				return first, false, nil
			}
			// Several pieces (text around a CDATA section, a split CDATA) or one that needs work.
			return decodeContent(s.src[start:stop]), false, nil
		case hasPrefixAt(s.src, s.pos, "<!--"):
			if err := s.comment(); err != nil {
				return value, false, err
			}
		case hasPrefixAt(s.src, s.pos, "<!"), hasPrefixAt(s.src, s.pos, "<?"):
			return value, false, errMarkup
		default:
			child, selfClosing, err := s.startTag()
			if err != nil {
				return value, false, err
			}
			nested = true
			if !selfClosing {
				if _, _, err := s.content(child, depth+1); err != nil {
					return value, false, err
				}
			}
		}
	}
}

// closeTag consumes the end tag of the element name at s.pos, which starts with "</".
func (s *scanner[T]) closeTag(name T) error {
	if after := s.pos + 2 + len(name); after < len(s.src) && s.src[after] == '>' &&
		string(s.src[s.pos+2:after]) == string(name) {
		s.pos = after + 1 // the common "</Name>"
		return nil
	}
	end, err := s.endTag()
	if err != nil {
		return err
	}
	if string(end) != string(name) {
		return errEndTag
	}
	return nil
}

// checkText validates character data (entities, no "]]>") and reports whether decoding it needs
// work: an entity to replace or a carriage return to normalise.
func checkText[T text](s T) (work bool, err error) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '&':
			_, n, ok := entity(s, i)
			if !ok {
				return false, errEntity
			}
			i += n - 1
			work = true
		case '\r':
			work = true
		case '>':
			if i >= 2 && s[i-1] == ']' && s[i-2] == ']' {
				return false, errCDATAEnd
			}
		}
	}
	return work, nil
}

// entity decodes the entity or character reference starting at s[i] == '&', returning the
// rune and the length of the reference including '&' and ';'.
func entity[T text](s T, i int) (r rune, n int, ok bool) {
	j := i + 1
	if j < len(s) && s[j] == '#' {
		j++
		base := rune(10)
		if j < len(s) && s[j] == 'x' {
			base = 16
			j++
		}
		digits := 0
		for ; j < len(s); j++ {
			c := s[j]
			var d rune
			switch {
			case '0' <= c && c <= '9':
				d = rune(c - '0')
			case base == 16 && 'a' <= c && c <= 'f':
				d = rune(c-'a') + 10
			case base == 16 && 'A' <= c && c <= 'F':
				d = rune(c-'A') + 10
			default:
				d = -1
			}
			if d < 0 {
				break
			}
			r = r*base + d
			if r > utf8.MaxRune {
				return 0, 0, false
			}
			digits++
		}
		if digits == 0 || j >= len(s) || s[j] != ';' || !isXMLChar(r) {
			return 0, 0, false
		}
		return r, j + 1 - i, true
	}
	for _, e := range [...]struct {
		name string
		r    rune
	}{{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"apos;", '\''}, {"quot;", '"'}} {
		if hasPrefixAt(s, j, e.name) {
			return e.r, 1 + len(e.name), true
		}
	}
	return 0, 0, false
}

// isXMLChar reports whether r is in XML 1.0's Char production.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// decodeContent builds the value of an element whose content (already validated, without child
// elements) is not a single plain piece: it concatenates CDATA sections and character data,
// replaces entities, drops comments, and turns "\r\n" and a lone "\r" from the input into "\n"
// exactly as encoding/xml does (a carriage return written as &#13; stays).
func decodeContent[T text](s T) T {
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		if s[i] == '<' {
			if hasPrefixAt(s, i, "<!--") {
				i += 4 + index(s[i+4:], "-->") + 3
				continue
			}
			// A CDATA section: validated by content, so its end is present.
			body := i + len("<![CDATA[")
			end := body + index(s[body:], "]]>")
			buf = appendNormalized(buf, s[body:end])
			i = end + len("]]>")
			continue
		}
		end := indexByte(s[i:], '<')
		if end < 0 {
			end = len(s) - i
		}
		run := s[i : i+end]
		prevCR := false
		for k := 0; k < len(run); k++ {
			switch c := run[k]; c {
			case '&':
				r, n, _ := entity(run, k)
				buf = utf8.AppendRune(buf, r)
				k += n - 1
				prevCR = false
				continue
			case '\r':
				buf = append(buf, '\n')
				prevCR = true
				continue
			case '\n':
				if !prevCR {
					buf = append(buf, '\n')
				}
			default:
				buf = append(buf, c)
			}
			prevCR = false
		}
		i += end
	}
	return T(buf)
}

// appendNormalized appends CDATA content with "\r\n" and "\r" turned into "\n".
func appendNormalized[T text](buf []byte, s T) []byte {
	prevCR := false
	for k := 0; k < len(s); k++ {
		switch c := s[k]; {
		case c == '\r':
			buf = append(buf, '\n')
			prevCR = true
			continue
		case c == '\n' && prevCR:
		default:
			buf = append(buf, c)
		}
		prevCR = false
	}
	return buf
}

// appendCDATA appends s as CDATA so that any parser reads back exactly s: "]]>" is split across
// two sections, a carriage return is written as &#13; between sections (a raw one would be
// normalised to "\n"), and characters XML 1.0 cannot carry at all (C0 controls, invalid UTF-8,
// U+FFFE, U+FFFF) become U+FFFD.
func appendCDATA(dst []byte, s string) []byte {
	dst = append(dst, "<![CDATA["...)
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '>' {
			i++
			continue
		}
		// Fast path for the 3-byte sequences of most Chinese text (U+1000–U+CFFF: lead bytes
		// E1–EC need no range check beyond continuation bytes).
		if 0xE1 <= c && c <= 0xEC && i+2 < len(s) && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 {
			i += 3
			continue
		}
		switch {
		case c == '>':
			if i >= 2 && s[i-2] == ']' && s[i-1] == ']' {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "]]><![CDATA["...)
				start = i
			}
			i++
		case c == '\t' || c == '\n':
			i++
		case c == '\r':
			dst = append(dst, s[start:i]...)
			dst = append(dst, "]]>&#13;<![CDATA["...)
			i++
			start = i
		case c < 0x20:
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\uFFFD"...)
				start = i + size
			}
			i += size
		}
	}
	dst = append(dst, s[start:]...)
	return append(dst, "]]>"...)
}

// appendEscaped appends s as escaped character data (for values such as numbers that WeCom
// writes without CDATA), with the same replacement of characters XML cannot carry.
func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		var rep string
		size := 1
		switch {
		case c == '<':
			rep = "&lt;"
		case c == '>':
			rep = "&gt;"
		case c == '&':
			rep = "&amp;"
		case c == '"':
			rep = "&quot;"
		case c == '\'':
			rep = "&apos;"
		case c == '\r':
			rep = "&#13;"
		case c == '\t' || c == '\n' || c >= 0x20 && c < utf8.RuneSelf:
		case c < 0x20:
			rep = "\uFFFD"
		default:
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
				rep = "\uFFFD"
			}
		}
		if rep != "" {
			dst = append(dst, s[start:i]...)
			dst = append(dst, rep...)
			start = i + size
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// appendElem appends <name>CDATA</name>.
func appendElem(dst []byte, name, value string) []byte {
	dst = append(dst, '<')
	dst = append(dst, name...)
	dst = append(dst, '>')
	dst = appendCDATA(dst, value)
	dst = append(dst, "</"...)
	dst = append(dst, name...)
	return append(dst, '>')
}

// appendPlainElem appends <name>escaped text</name>.
func appendPlainElem(dst []byte, name, value string) []byte {
	dst = append(dst, '<')
	dst = append(dst, name...)
	dst = append(dst, '>')
	dst = appendEscaped(dst, value)
	dst = append(dst, "</"...)
	dst = append(dst, name...)
	return append(dst, '>')
}
