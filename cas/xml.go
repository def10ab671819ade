package cas

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html/charset"
)

// xmlServiceResponse is <cas:serviceResponse>. Tags carry no namespace, so encoding/xml matches
// the local names in any namespace (or none): servers differ in prefix and namespace URI.
type xmlServiceResponse struct {
	XMLName xml.Name
	Success *xmlSuccess `xml:"authenticationSuccess"`
	Failure *xmlFailure `xml:"authenticationFailure"`
}

type xmlSuccess struct {
	User       string     `xml:"user"`
	Attributes *xmlAttrs  `xml:"attributes"`
	Extra      []xmlValue `xml:",any"` // some servers put attributes directly here
}

type xmlAttrs struct {
	Items []xmlValue `xml:",any"`
}

// xmlValue is one attribute, either <cas:cn>张三</cas:cn> (protocol 3 and most protocol 2 servers)
// or <cas:attribute name="cn" value="张三"/> (the older "name-value" style).
type xmlValue struct {
	XMLName xml.Name
	Name    string `xml:"name,attr"`
	Value   string `xml:"value,attr"`
	Text    string `xml:",chardata"`
}

type xmlFailure struct {
	Code string `xml:"code,attr"`
	Text string `xml:",chardata"`
}

// response is a parsed serviceResponse: either failure is set, or user (possibly empty) and attrs.
type response struct {
	user    string
	attrs   []attr // in document order; a multi-valued attribute repeats its name
	failure *failure
}

type attr struct{ name, value string }

type failure struct{ code, message string }

// parseResponse parses a CAS 2/3 serviceResponse document.
func parseResponse(body []byte) (*response, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty response")
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.CharsetReader = charset.NewReaderLabel // a few servers still answer in GBK
	var doc xmlServiceResponse
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("malformed serviceResponse: %w", err)
	}
	if doc.XMLName.Local != "serviceResponse" {
		return nil, fmt.Errorf("unexpected root element <%s>, want serviceResponse", doc.XMLName.Local)
	}
	switch {
	case doc.Failure != nil:
		return &response{failure: &failure{
			code:    strings.TrimSpace(doc.Failure.Code),
			message: truncate(strings.Join(strings.Fields(doc.Failure.Text), " "), 200),
		}}, nil
	case doc.Success != nil:
		r := &response{user: strings.TrimSpace(doc.Success.User)}
		if doc.Success.Attributes != nil {
			r.add(doc.Success.Attributes.Items)
		}
		r.add(doc.Success.Extra)
		return r, nil
	}
	return nil, errors.New("serviceResponse holds neither authenticationSuccess nor authenticationFailure")
}

func (r *response) add(items []xmlValue) {
	for _, it := range items {
		name, value := it.XMLName.Local, it.Text
		if name == "attribute" && it.Name != "" {
			name, value = it.Name, it.Value
		}
		r.attrs = append(r.attrs, attr{name: name, value: strings.TrimSpace(value)})
	}
}

// attr returns the first non-empty value of the attribute called name, matched exactly, else
// case-insensitively; "" if there is none.
func (r *response) attr(name string) string {
	for _, a := range r.attrs {
		if a.name == name && a.value != "" {
			return a.value
		}
	}
	for _, a := range r.attrs {
		if strings.EqualFold(a.name, name) && a.value != "" {
			return a.value
		}
	}
	return ""
}

// attrNames lists the attribute names present (no values: they are personal data).
func (r *response) attrNames() []string {
	seen := make(map[string]bool, len(r.attrs))
	var names []string
	for _, a := range r.attrs {
		if !seen[a.name] {
			seen[a.name] = true
			names = append(names, a.name)
		}
	}
	return names
}

// truncate cuts s to at most n bytes without splitting a character, marking the cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
