// Command wecampus is the 微校园助手 service and its admin CLI (CONTRACT.md §1): serve, demo,
// migrate, config check, binding get/list/unbind, menu sync/show, reconcile and version, plus
// purge, offboard and healthcheck. This package is the composition root: the only place that
// knows every concrete type.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes (README "命令行").
const (
	exitOK       = 0
	exitFailure  = 1 // any failure, including a bad config
	exitUsage    = 2 // unknown command, bad flag or argument
	exitNotFound = 3 // binding get: no such binding
	exitDrift    = 4 // reconcile: drift found
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	return c.run(context.Background(), args)
}

// cli holds the process's outputs and the seams tests use to observe serve.
type cli struct {
	stdout, stderr io.Writer

	// wrapHandler, when set, wraps the service's handler (tests add a slow route).
	wrapHandler func(http.Handler) http.Handler
	// onListen, when set, is told the address serve listens on.
	onListen func(net.Addr)
	// onMetricsListen, when set, is told the address of the server.metrics_addr listener.
	onMetricsListen func(net.Addr)
	// demoShutdown, when set, replaces the demo's shutdown timeout (a test's silent connection
	// would otherwise hold its stop for the full 2 s).
	demoShutdown time.Duration

	configPath string
	cfg        *Config // the loaded config, for scrubbing secrets from error output
}

// exitError carries a specific exit code up from a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks a command-line mistake (exit 2).
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// silentFailure is returned by a command that already printed why it failed (config check).
var silentFailure = &exitError{code: exitFailure, err: errors.New("")}

func (c *cli) run(ctx context.Context, args []string) int {
	root := c.rootCmd()
	root.SetArgs(args)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if strings.HasPrefix(err.Error(), "unknown command") {
		code = exitUsage // cobra's own error for an unknown subcommand
	}
	if msg := err.Error(); msg != "" {
		for line := range strings.Lines(c.scrub(msg)) {
			line = strings.TrimRight(line, "\n")
			if !strings.HasPrefix(line, "config: ") {
				line = "wecampus: " + line
			}
			fmt.Fprintln(c.stderr, line)
		}
	}
	return code
}

func (c *cli) rootCmd() *cobra.Command {
	defPath := "./config.yaml"
	if p, ok := os.LookupEnv("WECAMPUS_CONFIG"); ok {
		defPath = p
	}
	root := &cobra.Command{
		Use:           "wecampus",
		Short:         "微校园助手: WeCom onboarding for a university (bind, verify, unbind)",
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.PersistentFlags().StringVar(&c.configPath, "config", defPath, "config file (env WECAMPUS_CONFIG); \"\" = environment only")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.AddCommand(
		c.serveCmd(),
		c.demoCmd(),
		c.migrateCmd(),
		c.configCmd(),
		c.bindingCmd(),
		c.menuCmd(),
		c.reconcileCmd(),
		c.purgeCmd(),
		c.offboardCmd(),
		c.healthcheckCmd(),
		c.versionCmd(),
	)
	return root
}

// loadConfig reads and validates the config named by --config. It keeps what it decoded even
// when it is invalid, so that the secrets it holds are scrubbed from the error output.
func (c *cli) loadConfig() (*Config, error) {
	cfg, err := LoadConfig(c.configPath)
	c.cfg = cfg
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// logger is the process logger: JSON (or text) on stderr, mobiles masked.
func (c *cli) logger(cfg *Config) *slog.Logger {
	return newLogger(cfg.Log, c.stderr)
}

// withDeps loads the config, builds the service with the parts opts ask for, runs fn and
// releases what was built.
func (c *cli) withDeps(ctx context.Context, fn func(context.Context, *deps) error, opts ...buildOption) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	d, err := build(ctx, cfg, c.logger(cfg), opts...)
	if err != nil {
		return err
	}
	defer d.close()
	return fn(ctx, d)
}

// scrub replaces every configured secret in s (see Config.Scrub).
func (c *cli) scrub(s string) string { return c.cfg.Scrub(s) }

// exactArgs is cobra.ExactArgs with a usage exit code.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError(fmt.Errorf("%w (usage: %s)", err, cmd.UseLine()))
		}
		return nil
	}
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(c.stdout, "wecampus %s\n", version)
			return err
		},
	}
}
