package app

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"unicode/utf8"
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
	Label      string // as configured, else TypeLabel of Type

	explicitLabel bool // Label was configured
}

// IdentityPolicy decides who may bind, in which department, and under which WeCom userid.
type IdentityPolicy struct {
	userID *template.Template
	rules  []IdentityRule
	// labels are identity.type_labels, keyed by the lower-cased CAS type.
	labels map[string]string
}

// DefaultTypeLabels are the Chinese names of common CAS identity types, used where neither
// identity.type_labels nor a rule's label names a type (keys lower-case; matching ignores case).
var DefaultTypeLabels = map[string]string{
	"student": "学生", "undergraduate": "本科生", "graduate": "研究生", "postgraduate": "研究生",
	"master": "硕士研究生", "doctor": "博士研究生", "phd": "博士研究生",
	"staff": "教职工", "teacher": "教师", "faculty": "教职工", "employee": "教职工",
	"alumni": "校友", "alumnus": "校友", "graduated": "毕业生",
	"retiree": "离退休人员", "retired": "离退休人员",
	"visitor": "访客", "guest": "访客", "external": "校外人员",
}

// SetTypeLabels sets identity.type_labels: the Chinese name shown for a CAS identity type (on the
// refusal page, and for a rule without its own label). Types match ignoring case, because the
// config reader lower-cases map keys. Errors name the key.
func (p *IdentityPolicy) SetTypeLabels(labels map[string]string) error {
	p.labels = make(map[string]string, len(labels))
	for typ, label := range labels {
		label = strings.TrimSpace(label)
		if strings.TrimSpace(typ) == "" {
			return fmt.Errorf("identity.type_labels: a type must not be empty")
		}
		if label == "" || utf8.RuneCountInString(label) > 20 {
			return fmt.Errorf("identity.type_labels.%s: the label must be 1 to 20 characters (got %q)", typ, label)
		}
		p.labels[strings.ToLower(typ)] = label
	}
	return nil
}

// TypeLabel is the Chinese name of a CAS identity type: identity.type_labels, else the label of
// a rule for the type, else DefaultTypeLabels, else the type itself ("未知" for none).
func (p *IdentityPolicy) TypeLabel(typ string) string {
	if typ == "" {
		return "未知"
	}
	key := strings.ToLower(typ)
	if p != nil {
		if l, ok := p.labels[key]; ok {
			return l
		}
		for _, r := range p.rules {
			if r.Type == typ && r.explicitLabel {
				return r.Label
			}
		}
	}
	if l, ok := DefaultTypeLabels[key]; ok {
		return l
	}
	return typ
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
		r := IdentityRule{Type: rc.Type, Department: rc.Department, Label: rc.Label, explicitLabel: rc.Label != ""}
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

// Match returns (a copy of) the first rule matching id, with its label resolved, and the WeCom
// userid to use. A person no rule admits gets EFORBIDDEN naming the account and its type.
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
		matched := *r
		matched.Label = p.ruleLabel(r)
		return &matched, userID, nil
	}
	return nil, "", p.refusal(id)
}

// refusal is the EFORBIDDEN of an identity no rule admits. It names the account that was refused
// (masked) and its type in Chinese, so that a member who logged in with the wrong account sees it.
func (p *IdentityPolicy) refusal(id CASIdentity) error {
	account, label := MaskNumber(id.Number), p.TypeLabel(id.Type)
	for _, r := range p.rules {
		if r.Type == id.Type {
			// The type is admitted, the number is not (a rule's number pattern).
			return Errorf(EFORBIDDEN, "你登录的统一身份认证账号 %s（%s）不在本系统开放注册的范围内。"+
				"如果登录错了账号，请使用其他账号登录；如有疑问，请联系学校信息化管理部门。", account, label)
		}
	}
	return Errorf(EFORBIDDEN, "你登录的统一身份认证账号 %s 的身份是“%s”，不在本系统开放注册的范围内。"+
		"如果登录错了账号，请使用其他账号登录；如有疑问，请联系学校信息化管理部门。", account, label)
}

// Label returns the label of the first rule for an identity type (学生, 教职工…), or "" when no
// rule admits the type.
func (p *IdentityPolicy) Label(typ string) string {
	if p == nil {
		return ""
	}
	for _, r := range p.rules {
		if r.Type == typ {
			return p.ruleLabel(&r)
		}
	}
	return ""
}

// ruleLabel is r's label: as configured, else the type's label.
func (p *IdentityPolicy) ruleLabel(r *IdentityRule) string {
	if r.explicitLabel {
		return r.Label
	}
	return p.TypeLabel(r.Type)
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
