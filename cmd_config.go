package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wecampus/wecampus/redis"
)

// probeTimeout bounds each config check probe.
const probeTimeout = 15 * time.Second

func (c *cli) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "configuration tools",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError(fmt.Errorf("config needs a subcommand: check"))
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "validate the config, then probe the database, WeCom gettoken (both secrets) and CAS",
		Long: "Validates every key, then probes the database, WeCom gettoken with the app secret and with\n" +
			"the 通讯录同步 secret, Redis when redis.addr is set, and the CAS server. Prints one line per\n" +
			"check; secrets are never printed.\n" +
			"Exits non-zero if any check fails.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.configCheck(cmd.Context())
		},
	})
	return cmd
}

// configCheck prints one line per check on stdout: "ok   name" or "FAIL name: reason". A config
// that does not load or validate is one line "FAIL config: ..." there, and its problems go to
// stderr, one per line, as for every other command; the probes then do not run.
func (c *cli) configCheck(ctx context.Context) error {
	out := &checkPrinter{w: c.stdout, scrub: c.scrub}
	cfg, err := c.loadConfig()
	if err == nil {
		err = cfg.CheckServe()
	}
	if err != nil {
		n := strings.Count(strings.TrimSpace(err.Error()), "\n") + 1
		out.fail("config", fmt.Errorf("%d problem(s), listed on stderr", n))
		fmt.Fprintln(c.stderr, c.scrub(err.Error()))
		return silentFailure
	}
	out.ok("config")

	// Probe logs (retries, warnings) go to stderr; the report is stdout.
	log := c.logger(cfg)
	out.check("database", func() error {
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		db, err := openStore(ctx, cfg, log, false)
		if err != nil {
			return err
		}
		defer db.Close()
		return db.Ping(ctx)
	})
	wc, err := newWeComClient(cfg, nil, log)
	for _, kind := range []string{"app", "contacts"} {
		out.check("wecom gettoken ("+kind+")", func() error {
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			return wc.ProbeToken(ctx, kind)
		})
	}
	if cfg.Redis.Addr != "" {
		out.check("redis", func() error {
			ctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			rc, err := redis.Open(ctx, redisConfig(cfg), nil, nil)
			if err != nil {
				return err
			}
			defer rc.Close()
			return rc.Ping(ctx)
		})
	}
	out.check("cas", func() error {
		cc, err := newCASClient(cfg, log)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		return cc.Probe(ctx)
	})
	out.check("sms ("+cfg.SMS.Provider+")", func() error {
		_, err := newSMS(cfg, slog.New(slog.DiscardHandler))
		return err
	})
	if out.failed {
		return silentFailure
	}
	return nil
}

// checkPrinter writes the config check report, one line per check, secrets scrubbed.
type checkPrinter struct {
	w      io.Writer
	scrub  func(string) string
	failed bool
}

func (p *checkPrinter) check(name string, fn func() error) {
	if err := fn(); err != nil {
		p.fail(name, err)
		return
	}
	p.ok(name)
}

func (p *checkPrinter) ok(name string) { fmt.Fprintf(p.w, "ok   %s\n", name) }

func (p *checkPrinter) fail(name string, err error) {
	p.failed = true
	fmt.Fprintf(p.w, "FAIL %s: %s\n", name, strings.TrimPrefix(oneLine(p.scrub(err.Error())), name+": "))
}
