package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wecampus/wecampus/app"
)

func (c *cli) menuCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "menu",
		Short: "write or show the menu of the 微校园助手 app",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError(fmt.Errorf("menu needs a subcommand: sync or show"))
		},
	}
	cmd.AddCommand(c.menuSyncCmd(), c.menuShowCmd())
	return cmd
}

func (c *cli) menuSyncCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "write the app menu from config (menu:, or the default menu) to WeCom (menu/create)",
		Long: "Writes the menu of config.yaml's menu: section (the default menu when it is empty) to the app\n" +
			"wecom.agent_id with menu/create, relative URLs resolved against server.base_url. Members see\n" +
			"the new menu after re-entering the app.",
		Example: "  wecampus menu sync --dry-run\n  wecampus menu sync",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withDeps(cmd.Context(), func(ctx context.Context, d *deps) error {
				cfg := d.cfg
				menu, err := cfg.AppMenu() // validation checked it: err only for a programming error
				if err != nil {
					return err
				}
				if dryRun {
					if err := writeMenu(c.stdout, menu); err != nil {
						return err
					}
					_, err := fmt.Fprintln(c.stdout, "dry run: nothing was written")
					return err
				}
				if err := d.svc.SyncMenu(ctx, menu); err != nil {
					return menuError(err, cfg)
				}
				if _, err := fmt.Fprintf(c.stdout, "ok   menu written to app %d (%d buttons); members see it after re-entering the app\n",
					cfg.WeCom.AgentID, len(menu)); err != nil {
					return err
				}
				return writeMenu(c.stdout, menu)
			}, withWeCom())
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the menu that would be written, write nothing")
	return cmd
}

func (c *cli) menuShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show",
		Short:   "print the app's current menu as WeCom has it (menu/get)",
		Example: "  wecampus menu show\n  wecampus menu show --json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withDeps(cmd.Context(), func(ctx context.Context, d *deps) error {
				cfg := d.cfg
				menu, err := d.svc.CurrentMenu(ctx)
				if err != nil {
					return menuError(err, cfg)
				}
				if asJSON {
					if menu == nil {
						menu = []app.MenuButton{}
					}
					return writeJSON(c.stdout, struct {
						Button []app.MenuButton `json:"button"`
					}{menu})
				}
				if len(menu) == 0 {
					_, err := fmt.Fprintf(c.stdout, "app %d has no menu; write one with: wecampus menu sync\n", cfg.WeCom.AgentID)
					return err
				}
				return writeMenu(c.stdout, menu)
			}, withWeCom())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print WeCom's JSON ({"button":[...]})`)
	return cmd
}

// menuHints explain the menu/* errcodes an admin can fix (doc 90231).
var menuHints = map[int]string{
	40054:  "a sub-button's URL is not on the app's trusted domain (网页授权及JS-SDK 可信域名); it must match server.base_url",
	40055:  "a button's URL is not on the app's trusted domain (网页授权及JS-SDK 可信域名); it must match server.base_url",
	40056:  "wecom.agent_id is not an app of this corp",
	301002: "wecom.app_secret belongs to another app than wecom.agent_id",
	48002:  "this secret may not manage the menu: wecom.app_secret must be the secret of the app wecom.agent_id",
	60020:  "this server's IP is not in the app's 企业可信IP list",
}

func menuError(err error, cfg *Config) error {
	if hint, ok := menuHints[app.WeComCode(err)]; ok {
		return fmt.Errorf("%w (%s)", err, strings.ReplaceAll(hint, "wecom.agent_id", fmt.Sprintf("wecom.agent_id %d", cfg.WeCom.AgentID)))
	}
	return err
}

// writeMenu prints a menu as a numbered outline, one button per line ("1. 注册绑定  view  URL"),
// sub-buttons indented and numbered within their parent ("   3.3 使用帮助  click  HELP").
func writeMenu(w io.Writer, menu []app.MenuButton) error {
	var b strings.Builder
	for i, btn := range menu {
		fmt.Fprintf(&b, "%d. %s\n", i+1, menuLine(btn))
		for j, sb := range btn.SubButton {
			fmt.Fprintf(&b, "   %d.%d %s\n", i+1, j+1, menuLine(sb))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func menuLine(b app.MenuButton) string {
	switch {
	case len(b.SubButton) > 0 && b.Type == "":
		return b.Name
	case b.Type == "view":
		return b.Name + "  view  " + b.URL
	case b.Key != "":
		return b.Name + "  " + b.Type + "  " + b.Key
	}
	return b.Name + "  " + b.Type
}
