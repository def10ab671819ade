package app

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// consoleZone is the time zone of the console's days: China Standard Time, where WeCom corps
// and their schools are, whatever zone the server runs in.
var consoleZone = time.FixedZone("CST", 8*60*60)

// ConsoleZone returns the time zone the console shows times in.
func ConsoleZone() *time.Location { return consoleZone }

// Console limits.
const (
	chartDays       = 30             // days of the binds-per-day chart
	stalePendingAge = 72 * time.Hour // a pending member older than this never joined
	dashboardRows   = 50             // rows of a dashboard list
	searchMax       = 50             // hits of a search
	maxQueryRunes   = 64             // longer than any number, userid, mobile or name
	personEventsMax = 200            // audit events on a person page
	personSMSMax    = 50             // SMS codes on a person page
	memberReadLimit = 3 * time.Second
)

// DayCount is the number of bindings created on one day (ConsoleZone).
type DayCount struct {
	Day   time.Time // midnight, ConsoleZone
	Count int
}

// Dashboard is what the console's front page shows.
type Dashboard struct {
	Counts            map[Status]int
	Total             int
	Days              []DayCount // the last chartDays days, oldest first, today last
	StalePending      []*Binding // pending for longer than 3 days, oldest first (at most 50)
	StalePendingTotal int
	OpenIntents       []*Intent
	Outbox            OutboxBacklog
}

// StalePendingAge is how long a member may stay pending before the dashboard lists it.
func StalePendingAge() time.Duration { return stalePendingAge }

// AdminDashboard gathers the dashboard: counts per status, binds per day for the last 30 days,
// pending members older than 3 days, open intents and the outbox backlog.
func (s *Service) AdminDashboard(ctx context.Context) (*Dashboard, error) {
	d := &Dashboard{}
	var err error
	if d.Counts, err = s.Store.CountBindingsByStatus(ctx); err != nil {
		return nil, err
	}
	for _, n := range d.Counts {
		d.Total += n
	}
	if d.Days, err = s.bindsPerDay(ctx); err != nil {
		return nil, err
	}
	now := s.now()
	if d.StalePending, d.StalePendingTotal, err = s.Store.FindStalePending(ctx, now.Add(-stalePendingAge), dashboardRows); err != nil {
		return nil, err
	}
	if d.OpenIntents, err = s.Store.FindOpenIntents(ctx, now.Add(time.Hour)); err != nil {
		return nil, err
	}
	if len(d.OpenIntents) > dashboardRows {
		d.OpenIntents = d.OpenIntents[:dashboardRows]
	}
	if d.Outbox, err = s.Store.CountOutbox(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// bindsPerDay counts the bindings created on each of the last chartDays days (ConsoleZone).
func (s *Service) bindsPerDay(ctx context.Context) ([]DayCount, error) {
	now := s.now().In(consoleZone)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, consoleZone)
	bounds := make([]time.Time, chartDays+1)
	for i := range bounds {
		bounds[i] = today.AddDate(0, 0, i-chartDays+1)
	}
	counts, err := s.Store.CountBindingsCreated(ctx, bounds)
	if err != nil {
		return nil, err
	}
	out := make([]DayCount, chartDays)
	for i := range out {
		out[i] = DayCount{Day: bounds[i], Count: counts[i]}
	}
	return out, nil
}

// SearchResult is the outcome of a console search.
type SearchResult struct {
	Query    string
	Bindings []*Binding
	Capped   bool // more than len(Bindings) matched
}

// SearchBindings finds bindings by number, userid, mobile or name: equal to q or starting with it
// (index range scans), at most 50. A mobile may be typed with +86 or spaces.
func (s *Service) SearchBindings(ctx context.Context, q string) (*SearchResult, error) {
	q = strings.TrimSpace(q)
	res := &SearchResult{Query: q}
	if q == "" {
		return res, nil
	}
	if utf8.RuneCountInString(q) > maxQueryRunes || !utf8.ValidString(q) {
		return nil, Errorf(EINVALID, "搜索内容过长。")
	}
	if m, ok := NormalizeMobile(q); ok && m != q {
		q = m
	}
	list, err := s.Store.SearchBindings(ctx, q, searchMax+1)
	if err != nil {
		return nil, err
	}
	if len(list) > searchMax {
		list, res.Capped = list[:searchMax], true
	}
	res.Bindings = list
	return res, nil
}

// WeComMemberState is the WeCom member of a person as read now (user/get).
type WeComMemberState struct {
	UserID      string
	Member      *Member // nil when absent or unreadable
	Gone        bool    // WeCom has no such member (60111)
	Unavailable bool    // WeCom could not be read now
}

// PersonFile is the console's page of one number.
type PersonFile struct {
	Number   string
	Live     *Binding   // nil when the number has no live binding
	Bindings []*Binding // every binding of the number, newest first
	Events   []*Event   // the audit trail, newest first (at most 200)
	SMS      []*SMSCode // codes sent to the bindings' mobiles or requested by the number, newest first
	Member   WeComMemberState
	Intent   *Intent // the open intent, if any
	// IntentStale is set when no request works on Intent: it can be repaired now.
	IntentStale bool
}

// ViewPerson gathers the page of number for a console user and audits the view. A number that
// never had a binding nor an open intent gets ENOTFOUND.
func (s *Service) ViewPerson(ctx context.Context, a *Admin, number string) (*PersonFile, error) {
	if number == "" || len(number) > maxNumberLen {
		return nil, Errorf(ENOTFOUND, "学号/工号 %s 从未绑定。", number)
	}
	p := &PersonFile{Number: number}
	var err error
	if p.Bindings, err = s.Store.FindBindingsByNumber(ctx, number); err != nil {
		return nil, err
	}
	if p.Intent, err = s.Store.FindOpenIntent(ctx, number); err != nil && ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	if len(p.Bindings) == 0 && p.Intent == nil {
		return nil, Errorf(ENOTFOUND, "学号/工号 %s 从未绑定。", number)
	}
	var bindingID int64
	if len(p.Bindings) > 0 {
		bindingID = p.Bindings[0].ID
	}
	for _, b := range p.Bindings {
		if b.Status.Live() {
			p.Live, bindingID = b, b.ID
		}
	}
	if err := s.auditAdmin(ctx, a, EventAdminView, number, bindingID, "person page viewed"); err != nil {
		return nil, err
	}
	if p.Events, err = s.Store.FindEventsByNumber(ctx, number, personEventsMax); err != nil {
		return nil, err
	}
	if p.SMS, err = s.Store.FindSMSCodes(ctx, mobilesOf(p.Bindings), number, personSMSMax); err != nil {
		return nil, err
	}
	p.IntentStale = p.Intent != nil && p.Intent.idle(s.now())
	p.Member = s.readMember(ctx, p)
	return p, nil
}

// mobilesOf returns the distinct non-empty mobiles of bs.
func mobilesOf(bs []*Binding) []string {
	var out []string
	for _, b := range bs {
		if b.Mobile != "" && !slices.Contains(out, b.Mobile) {
			out = append(out, b.Mobile)
		}
	}
	return out
}

// readMember reads the WeCom member of the person now: the live binding's, else the latest
// binding's, else the open intent's userid. WeCom being slow or down never fails the page.
func (s *Service) readMember(ctx context.Context, p *PersonFile) WeComMemberState {
	var st WeComMemberState
	switch {
	case p.Live != nil:
		st.UserID = p.Live.UserID
	case len(p.Bindings) > 0:
		st.UserID = p.Bindings[0].UserID
	case p.Intent != nil:
		st.UserID = p.Intent.UserID
	}
	if st.UserID == "" {
		return st
	}
	ctx, cancel := context.WithTimeout(ctx, memberReadLimit)
	defer cancel()
	m, err := s.WeCom.GetUser(ctx, st.UserID)
	switch {
	case err == nil:
		st.Member = m
	case WeComCode(err) == WeComUserNotFound:
		st.Gone = true
	default:
		s.log().Warn("console: read WeCom member", "userid", st.UserID, "err", err)
		st.Unavailable = true
	}
	return st
}

// NumberEvents returns the audit trail of a number (every binding it had, and the console's
// views and actions), newest first; limit 0 means all.
func (s *Service) NumberEvents(ctx context.Context, number string, limit int) ([]*Event, error) {
	return s.Store.FindEventsByNumber(ctx, number, limit)
}
