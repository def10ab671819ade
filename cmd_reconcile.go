package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func (c *cli) reconcileCmd() *cobra.Command {
	var fix bool
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "compare bindings with WeCom's members; print drift (exit 4 when there is any)",
		Long: "reconcile reads every member id from WeCom (user/list_id) and compares them with the live bindings.\n" +
			"missing: a live binding whose member is gone from WeCom; --fix marks it unbound (no WeCom write).\n" +
			"unbound: a WeCom member without a live binding (created by an admin or another tool); only reported.",
		Example: "  wecampus reconcile\n  wecampus reconcile --fix",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withDeps(cmd.Context(), func(ctx context.Context, deps *deps) error {
				d, err := deps.svc.Reconcile(ctx, fix)
				if err != nil {
					return err
				}
				for _, b := range d.Missing {
					verb := "missing"
					if fix {
						verb = "fixed  "
					}
					fmt.Fprintf(c.stdout, "%s %s userid=%s status=%s (member not in WeCom)\n", verb, b.Number, b.UserID, b.Status)
				}
				for _, id := range d.Unbound {
					fmt.Fprintf(c.stdout, "unbound userid=%s (WeCom member without a binding; not changed)\n", id)
				}
				if d.Empty() {
					_, err := fmt.Fprintln(c.stdout, "ok   no drift")
					return err
				}
				fmt.Fprintf(c.stdout, "drift: %d missing, %d unbound\n", len(d.Missing), len(d.Unbound))
				return &exitError{code: exitDrift, err: errors.New("")} // the report above says why
			}, withStore(), withWeCom())
		},
	}
	cmd.Flags().BoolVar(&fix, "fix", false, "mark the bindings of members gone from WeCom unbound")
	return cmd
}
