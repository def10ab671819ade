package app

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"text/template"
)

// IdentityRuleConfig is one entry of identity.rules as written in config.yaml.
type IdentityRuleConfig struct {
	Type       string // CAS identity type that must match exactly
	Number     string // optional regular expression the number must match
	Department int64  // WeCom department the member is created in
	Label      string // Chinese label shown to the member, e.g. 学生
}

// IdentityRule is a compiled identity rule.
type IdentityRule struct {
	Type       string
	Number     *regexp.Regexp // nil: any number
	Department int64
	Label      string
}

// IdentityPolicy decides who may bind, in which department, and under which WeCom userid.
type IdentityPolicy struct {
	userID *template.Template
	rules  []IdentityRule
}

// NewIdentityPolicy compiles identity.userid and identity.rules. Errors name the offending key.
func NewIdentityPolicy(userIDTemplate string, rules []IdentityRuleConfig) (*IdentityPolicy, error) {
	if strings.TrimSpace(userIDTemplate) == "" {
		userIDTemplate = "{{.Number}}"
	}
	tpl, err := template.New("userid").Option("missingkey=error").Parse(userIDTemplate)
	if err != nil {
		return nil, fmt.Errorf("identity.userid: invalid template: %w", err)
	}
	p := &IdentityPolicy{userID: tpl}
	if _, err := p.render("20210001", "student"); err != nil {
		return nil, fmt.Errorf("identity.userid: %w", err)
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("identity.rules: at least one rule is required")
	}
	for i, rc := range rules {
		if rc.Type == "" {
			return nil, fmt.Errorf("identity.rules[%d].type: required", i)
		}
		if rc.Department <= 0 {
			return nil, fmt.Errorf("identity.rules[%d].department: must be a positive WeCom department id", i)
		}
		r := IdentityRule{Type: rc.Type, Department: rc.Department, Label: rc.Label}
		if r.Label == "" {
			r.Label = rc.Type
		}
		if rc.Number != "" {
			re, err := regexp.Compile(rc.Number)
			if err != nil {
				return nil, fmt.Errorf("identity.rules[%d].number: invalid regular expression: %w", i, err)
			}
			r.Number = re
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// Match returns the first rule matching id and the WeCom userid to use. A person no rule admits
// gets EFORBIDDEN naming the identity type.
func (p *IdentityPolicy) Match(id CASIdentity) (*IdentityRule, string, error) {
	for i := range p.rules {
		r := &p.rules[i]
		if r.Type != id.Type || (r.Number != nil && !r.Number.MatchString(id.Number)) {
			continue
		}
		userID, err := p.render(id.Number, id.Type)
		if err != nil {
			return nil, "", Wrap(EINTERNAL, err, "生成企业微信账号失败")
		}
		return r, userID, nil
	}
	t := id.Type
	if t == "" {
		t = "未知"
	}
	return nil, "", Errorf(EFORBIDDEN, "你的身份类型(%s)不在本系统开放注册的范围内。如有疑问,请联系学校信息化管理部门。", t)
}

// Label returns the label of the first rule for an identity type (学生, 教职工…), or "".
func (p *IdentityPolicy) Label(typ string) string {
	if p == nil {
		return ""
	}
	for _, r := range p.rules {
		if r.Type == typ {
			return r.Label
		}
	}
	return ""
}

var userIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

func (p *IdentityPolicy) render(number, typ string) (string, error) {
	var buf bytes.Buffer
	if err := p.userID.Execute(&buf, struct{ Number, Type string }{number, typ}); err != nil {
		return "", fmt.Errorf("render userid template: %w", err)
	}
	s := buf.String()
	if !userIDPattern.MatchString(s) {
		return "", fmt.Errorf("userid %q is not a valid WeCom userid (1-64 of letters, digits, _ . @ -, starting with a letter or digit)", s)
	}
	return s, nil
}
