package app

import (
	"context"
	"time"
)

// RetentionPolicy says how long personal data is kept (retention.*, CONTRACT §6).
type RetentionPolicy struct {
	// UnboundAfter: a binding unbound or migrated this long ago loses its mobile and name
	// (8760h).
	UnboundAfter time.Duration
	// SMSAfter: SMS code rows older than this are deleted (720h).
	SMSAfter time.Duration
}

func (p RetentionPolicy) withDefaults() RetentionPolicy {
	if p.UnboundAfter <= 0 {
		p.UnboundAfter = 365 * 24 * time.Hour
	}
	if p.SMSAfter <= 0 {
		p.SMSAfter = 30 * 24 * time.Hour
	}
	return p
}

// PurgeCount is how many records of one kind a purge changed (or would change).
type PurgeCount struct {
	Kind  string // bindings | sms_codes | sms_ips | finished_flows | admin_sessions
	Count int
}

// Purge applies the retention policy now: it forgets the mobile and name of long-released
// bindings, deletes old SMS code rows, and blanks the IPs of code rows the per-IP limit no longer
// counts, and drops the replay records of flows whose cookies have expired and the console
// sessions that have expired. With dryRun nothing changes and the counts say what would. It is
// safe to run on any number of replicas at once: every step is a conditional write.
func (s *Service) Purge(ctx context.Context, dryRun bool) ([]PurgeCount, error) {
	p := s.Retention.withDefaults()
	now := s.now()
	steps := []struct {
		kind string
		run  func(context.Context, time.Time, bool) (int, error)
		age  time.Duration
	}{
		{"bindings", s.Store.PurgeBindings, p.UnboundAfter},
		{"sms_ips", s.Store.ForgetSMSIPs, s.SMSPolicy.withDefaults().IPWindow},
		{"sms_codes", s.Store.PurgeSMSCodes, p.SMSAfter},
		{"finished_flows", s.Store.PurgeFinishedFlows, 0},
		{"admin_sessions", s.Store.PurgeAdminSessions, 0},
	}
	out := make([]PurgeCount, 0, len(steps))
	for _, st := range steps {
		n, err := st.run(ctx, now.Add(-st.age), dryRun)
		if err != nil {
			return out, err
		}
		out = append(out, PurgeCount{Kind: st.kind, Count: n})
	}
	if !dryRun {
		args := make([]any, 0, 2*len(out))
		for _, c := range out {
			args = append(args, c.Kind, c.Count)
		}
		s.log().Info("retention purge", args...)
	}
	return out, nil
}
