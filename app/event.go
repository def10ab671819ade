package app

import "time"

// Actors of audit events.
const (
	ActorMember = "member" // the person, through the H5 pages
	ActorAdmin  = "admin"  // the CLI, or the console (the detail ends with "[admin <userid>]")
	ActorWeCom  = "wecom"  // a callback from WeCom (admin console or member self-edit)
	ActorSystem = "system" // the service itself (repair on start-up, outbox)
)

// Audit event kinds.
const (
	EventBindIntent    = "bind.intent"     // about to create/update the member in WeCom
	EventBound         = "bind.created"    // binding stored pending
	EventActivated     = "bind.activated"  // pending -> active
	EventUnbound       = "bind.unbound"    // -> unbound
	EventRebound       = "bind.migrated"   // -> migrated (换绑, Rebind)
	EventUserIDChanged = "bind.userid"     // userid renamed in WeCom
	EventMobileChanged = "bind.mobile"     // mobile changed in WeCom
	EventRepaired      = "bind.repaired"   // fixed by the start-up repair or reconcile
	EventWelcomeSent   = "message.welcome" // welcome message delivered
	EventPurged        = "data.purged"     // mobile and name removed after retention.unbound_after
	EventRebindCode    = "rebind.code"     // a 换绑 code was sent to this binding's mobile for another number

	// The helpdesk console (/admin): each names the admin's userid in its detail.
	EventAdminSignIn  = "admin.signin"  // signed in (not tied to a number)
	EventAdminSignOut = "admin.signout" // signed out
	EventAdminView    = "admin.view"    // viewed a person page
	EventAdminInvite  = "admin.invite"  // re-sent the WeCom invitation of a pending member
	EventAdminRepair  = "admin.repair"  // repaired an open intent
	EventAdminExport  = "admin.export"  // exported bindings as CSV (not tied to a number)
	EventAdminFailed  = "admin.failed"  // an action that failed and changed nothing
)

// Event is one row of the append-only audit trail: who did what, when, to which number/userid.
type Event struct {
	ID        int64     `json:"id"`
	BindingID int64     `json:"binding_id,omitempty"`
	Kind      string    `json:"kind"`
	Actor     string    `json:"actor"`
	Number    string    `json:"number,omitempty"`
	UserID    string    `json:"userid,omitempty"`
	Detail    string    `json:"detail,omitempty"` // free text; masked personal data only
	CreatedAt time.Time `json:"created_at"`
}
