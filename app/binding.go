package app

import "time"

// Status is the life-cycle state of a binding.
type Status string

// Binding statuses. pending and active are "live": at most one live binding exists per number,
// per userid and per mobile (enforced by the store's unique indexes).
const (
	StatusPending Status = "pending"  // member created in WeCom and invited, not yet joined
	StatusActive  Status = "active"   // member joined (callback) or passed join verification
	StatusUnbound Status = "unbound"  // member released (unbind, admin, or deleted in WeCom)
	StatusRebound Status = "migrated" // released in favour of the person's newer binding (换绑, Rebind)
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusActive, StatusUnbound, StatusRebound:
		return true
	}
	return false
}

// Live reports whether s holds the number, userid and mobile.
func (s Status) Live() bool { return s == StatusPending || s == StatusActive }

// Binding maps a school number (学号/工号) to a WeCom member. A binding row is never deleted;
// releasing a member changes its status and the row keeps its history.
type Binding struct {
	ID         int64     `json:"id"`
	Number     string    `json:"number"`
	UserID     string    `json:"userid"`
	Mobile     string    `json:"mobile"`
	Name       string    `json:"name"`
	Type       string    `json:"type"`       // identity type from CAS, e.g. student, staff
	Department int64     `json:"department"` // WeCom department id the member was created in
	Status     Status    `json:"status"`
	Reason     string    `json:"reason,omitempty"`      // why it was unbound/rebound
	ReboundTo  int64     `json:"migrated_to,omitempty"` // id of the binding that replaced it (换绑)
	PersonKey  string    `json:"-"`                     // keyed hash of the CAS person id; "" without one
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// BindingFilter selects bindings for listing. Zero values mean "no filter"; Limit 0 means no limit.
type BindingFilter struct {
	Status Status
	Offset int
	Limit  int
}

// BindingUpdate is a partial update of a binding; nil fields are left unchanged.
// When IfStatus is non-empty the update applies only if the current status is one of them;
// otherwise the store returns ECONFLICT and changes nothing.
type BindingUpdate struct {
	Status     *Status
	UserID     *string
	Mobile     *string
	Name       *string
	Department *int64
	Reason     *string
	ReboundTo  *int64
	IfStatus   []Status
}

// Ptr returns a pointer to v; handy for BindingUpdate literals.
func Ptr[T any](v T) *T { return &v }

// MemberBinding is a binding as the member pages show it: with the label of its identity type.
type MemberBinding struct {
	*Binding
	Label string // from identity.rules, e.g. 学生; "" when no rule names the type
}

func (s *Service) memberBinding(b *Binding) *MemberBinding {
	if b == nil {
		return nil
	}
	return &MemberBinding{Binding: b, Label: s.Identity.Label(b.Type)}
}
