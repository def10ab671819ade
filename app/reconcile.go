package app

import (
	"context"
	"sort"
	"strings"
)

// Drift is what Reconcile found between the bindings and the members WeCom really has.
type Drift struct {
	// Missing are live bindings whose member no longer exists in WeCom (deleted in the admin
	// console while the contacts callback was not configured or was lost).
	Missing []*Binding
	// Unbound are WeCom members without a live binding: created by an admin or another tool.
	// They are reported, never changed.
	Unbound []string
}

// Empty reports whether nothing drifted.
func (d *Drift) Empty() bool { return len(d.Missing) == 0 && len(d.Unbound) == 0 }

// Reconcile compares the live bindings with WeCom's member list (user/list_id). With fix, the
// bindings of members that are gone are marked unbound (the only safe repair: no WeCom write)
// and stale bind intents are resolved. It returns the drift found before fixing.
func (s *Service) Reconcile(ctx context.Context, fix bool) (*Drift, error) {
	ids, err := s.WeCom.ListUserIDs(ctx)
	if err != nil {
		return nil, err
	}
	inWeCom := make(map[string]bool, len(ids))
	for _, id := range ids {
		inWeCom[strings.ToLower(id)] = true
	}
	d := &Drift{}
	bound := make(map[string]bool)
	for _, st := range []Status{StatusPending, StatusActive} {
		bs, err := s.Store.FindBindings(ctx, BindingFilter{Status: st})
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			key := strings.ToLower(b.UserID)
			bound[key] = true
			if !inWeCom[key] {
				d.Missing = append(d.Missing, b)
			}
		}
	}
	for _, id := range ids {
		if !bound[strings.ToLower(id)] {
			d.Unbound = append(d.Unbound, id)
		}
	}
	sort.Strings(d.Unbound)
	if !fix {
		return d, nil
	}
	for _, b := range d.Missing {
		_, err := s.Store.UpdateBinding(ctx, b.ID, BindingUpdate{
			Status:   Ptr(StatusUnbound),
			Reason:   Ptr("missing in WeCom (reconcile)"),
			IfStatus: []Status{StatusPending, StatusActive},
		}, Event{Kind: EventRepaired, Actor: ActorAdmin, Detail: "reconcile: member " + b.UserID + " not in WeCom"})
		if err := ignoreConflict(err); err != nil {
			return d, err
		}
	}
	if _, err := s.RepairIntents(ctx); err != nil {
		return d, err
	}
	return d, nil
}
