package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func (c *cli) purgeCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "apply retention now: forget personal data of long-released bindings and old SMS codes",
		Long: "purge applies the retention: settings (serve also does it every hour):\n" +
			"bindings       unbound or migrated longer ago than retention.unbound_after lose mobile, name and person key\n" +
			"               (number, userid, status, times and the audit trail stay);\n" +
			"sms_ips        SMS code rows older than sms.ip_window lose the requesting IP;\n" +
			"sms_codes      SMS code rows older than retention.sms_after are deleted;\n" +
			"finished_flows replay records of member flows whose cookies have expired are deleted;\n" +
			"admin_sessions console sessions (/admin) that have expired are deleted.\n" +
			"One line per kind with its count; --dry-run counts without changing anything.",
		Example: "  wecampus purge --dry-run\n  wecampus purge",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withDeps(cmd.Context(), func(ctx context.Context, deps *deps) error {
				counts, err := deps.svc.Purge(ctx, dryRun)
				verb := "purged"
				if dryRun {
					verb = "would purge"
				}
				for _, n := range counts {
					fmt.Fprintf(c.stdout, "%s %d %s\n", verb, n.Count, n.Kind)
				}
				return err
			}, withMigrate())
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count what would be purged; change nothing")
	return cmd
}
