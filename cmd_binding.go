package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wecampus/wecampus/app"
)

// bindingFields are the field names of `binding get --json` and the header of
// `binding list --csv` (CONTRACT §1), in that order.
var bindingFields = app.BindingFields

// bindingJSON is the JSON shape of one binding: CONTRACT's fields, RFC 3339 times in UTC, plus
// the audit details.
type bindingJSON struct {
	Number     string `json:"number"`
	UserID     string `json:"userid"`
	Mobile     string `json:"mobile"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Department int64  `json:"department"`
	Status     string `json:"status"`
	CreatedAt  string `json:"created_at"`
	UpdatedAt  string `json:"updated_at"`
	ID         int64  `json:"id"`
	Reason     string `json:"reason,omitempty"`
	ReboundTo  int64  `json:"migrated_to,omitempty"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func toBindingJSON(b *app.Binding) bindingJSON {
	return bindingJSON{
		Number: b.Number, UserID: b.UserID, Mobile: b.Mobile, Name: b.Name, Type: b.Type,
		Department: b.Department, Status: string(b.Status),
		CreatedAt: rfc3339(b.CreatedAt), UpdatedAt: rfc3339(b.UpdatedAt),
		ID: b.ID, Reason: b.Reason, ReboundTo: b.ReboundTo,
	}
}

// row returns the values of bindingFields.
func (j bindingJSON) row() []string {
	return []string{j.Number, j.UserID, j.Mobile, j.Name, j.Type, strconv.FormatInt(j.Department, 10),
		j.Status, j.CreatedAt, j.UpdatedAt}
}

func (c *cli) bindingCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "binding",
		Short: "look up, list and release bindings (学号/工号 → 企业微信 userid)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError(fmt.Errorf("binding needs a subcommand: get, list or unbind"))
		},
	}
	cmd.AddCommand(c.bindingGetCmd(), c.bindingListCmd(), c.bindingUnbindCmd())
	return cmd
}

// bindingEventsJSON is `binding get --json --events`: the binding and its number's audit trail,
// oldest first (CONTRACT §9).
type bindingEventsJSON struct {
	bindingJSON
	Events []*app.Event `json:"events"`
}

func (c *cli) bindingGetCmd() *cobra.Command {
	var asJSON, withEvents bool
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "print the binding of a number, userid or mobile (exit 3 when there is none)",
		Example: "  wecampus binding get 20210001\n" +
			"  wecampus binding get 13800000000 --json\n" +
			"  wecampus binding get 20210001 --json --events",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withDeps(cmd.Context(), func(ctx context.Context, d *deps) error {
				b, err := d.svc.FindBinding(ctx, args[0])
				if app.ErrorCode(err) == app.ENOTFOUND {
					return &exitError{code: exitNotFound, err: fmt.Errorf("no binding for %q", args[0])}
				} else if app.ErrorCode(err) == app.EINVALID {
					return usageError(err)
				} else if err != nil {
					return err
				}
				if !withEvents {
					if asJSON {
						return writeJSON(c.stdout, toBindingJSON(b))
					}
					return writeBindingText(c.stdout, toBindingJSON(b))
				}
				events, err := d.svc.NumberEvents(ctx, b.Number, 0)
				if err != nil {
					return err
				}
				slices.Reverse(events)
				if asJSON {
					return writeJSON(c.stdout, bindingEventsJSON{bindingJSON: toBindingJSON(b), Events: events})
				}
				if err := writeBindingText(c.stdout, toBindingJSON(b)); err != nil {
					return err
				}
				return writeEventsText(c.stdout, events)
			}, withStore())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&withEvents, "events", false, "also print the audit trail of the number (JSON: the events field), oldest first")
	return cmd
}

func (c *cli) bindingListCmd() *cobra.Command {
	var status string
	var asCSV bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list bindings, oldest first",
		Example: "  wecampus binding list --status pending\n" +
			"  wecampus binding list --csv > bindings.csv",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := app.BindingFilter{Status: app.Status(status)}
			if status != "" && !f.Status.Valid() {
				return usageError(fmt.Errorf("--status must be pending, active, unbound or migrated (got %q)", status))
			}
			return c.withDeps(cmd.Context(), func(ctx context.Context, d *deps) error {
				list, err := d.svc.ListBindings(ctx, f)
				if err != nil {
					return err
				}
				if asCSV {
					return writeBindingCSV(c.stdout, list)
				}
				return writeBindingTable(c.stdout, list)
			}, withStore())
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only bindings in this status: pending, active, unbound or migrated")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "print CSV with a header row")
	return cmd
}

func (c *cli) bindingUnbindCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "unbind NUMBER",
		Short: "admin unbind: delete the WeCom member of NUMBER and mark its binding unbound",
		Long: "Releases the live binding of a 学号/工号: deletes its member in WeCom (user/delete; a member\n" +
			"already gone counts as deleted), marks the binding unbound with the reason and records an audit\n" +
			"event. The person can bind again at once. Exit 3 when the number has no live binding.",
		Example: "  wecampus binding unbind 20210001 --reason \"毕业离校\"",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			number := args[0]
			return c.withDeps(cmd.Context(), func(ctx context.Context, d *deps) error {
				svc := d.svc
				b, err := svc.AdminUnbind(ctx, number, reason)
				if app.ErrorCode(err) == app.ENOTFOUND {
					msg := fmt.Sprintf("number %q has no live binding: nothing to unbind", number)
					if last, ferr := svc.FindBinding(ctx, number); ferr == nil && last.Number == number {
						msg += fmt.Sprintf(" (its latest binding is %s since %s)", last.Status, rfc3339(last.UpdatedAt))
					}
					return &exitError{code: exitNotFound, err: errors.New(msg)}
				} else if err != nil {
					return err
				}
				_, err = fmt.Fprintf(c.stdout, "ok   %s unbound: WeCom member %s deleted, binding status %s (reason: %s)\n",
					b.Number, b.UserID, b.Status, b.Reason)
				return err
			}, withStore(), withWeCom())
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the binding and its audit trail (default \"unbound by admin\")")
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func writeBindingText(w io.Writer, b bindingJSON) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, v := range b.row() {
		fmt.Fprintf(tw, "%s:\t%s\n", bindingFields[i], v)
	}
	fmt.Fprintf(tw, "id:\t%d\n", b.ID)
	if b.Reason != "" {
		fmt.Fprintf(tw, "reason:\t%s\n", b.Reason)
	}
	if b.ReboundTo != 0 {
		fmt.Fprintf(tw, "migrated_to:\t%d\n", b.ReboundTo)
	}
	return tw.Flush()
}

// writeBindingCSV writes the CSV the console's export also writes; formula cells are escaped.
func writeBindingCSV(w io.Writer, list []*app.Binding) error {
	return app.WriteBindingsCSV(w, list)
}

// writeEventsText prints an audit trail, one event a line.
func writeEventsText(w io.Writer, events []*app.Event) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nevents (%d):\n", len(events))
	for _, ev := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rfc3339(ev.CreatedAt), ev.Kind, ev.Actor, ev.Detail)
	}
	return tw.Flush()
}

func writeBindingTable(w io.Writer, list []*app.Binding) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tUSERID\tMOBILE\tNAME\tTYPE\tDEPT\tSTATUS\tCREATED\tUPDATED")
	for _, b := range list {
		r := toBindingJSON(b).row()
		for i, v := range r {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, v)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d binding(s)\n", len(list))
	return err
}
