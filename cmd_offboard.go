package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wecampus/wecampus/app"
)

// exitOffboardFailed is offboard's exit code when some numbers failed (CONTRACT §10).
const exitOffboardFailed = 4

func (c *cli) offboardCmd() *cobra.Command {
	var file, reason string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "offboard --file PATH",
		Short: "unbind graduates and leavers in bulk: delete their WeCom members (exit 4 when any failed)",
		Long: "offboard reads numbers (学号/工号) from PATH: one per line, or a CSV whose header row has a \"number\" column.\n" +
			"Each live binding is unbound with the reason and its WeCom member deleted, 200 per user/batchdelete call;\n" +
			"members already gone from WeCom are unbound too. A number without a live binding is skipped, so a rerun\n" +
			"finishes what a failed run left. Progress goes to stderr; skipped and failed numbers, then the summary,\n" +
			"to stdout. --dry-run changes nothing and calls no WeCom API.",
		Example: "  wecampus offboard --file graduates-2025.csv --dry-run\n" +
			"  wecampus offboard --file graduates-2025.csv --reason \"2025届毕业\"",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError(fmt.Errorf("offboard needs --file PATH (usage: %s)", cmd.UseLine()))
			}
			numbers, err := readNumbersFile(file)
			if err != nil {
				return usageError(err)
			}
			return c.withDeps(cmd.Context(), func(ctx context.Context, d *deps) error {
				return c.offboard(ctx, d.svc, numbers, app.OffboardOptions{Reason: reason, DryRun: dryRun})
			}, withStore(), withWeCom())
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "the numbers: one per line, or a CSV with a \"number\" column")
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in each binding and its audit trail (default \""+app.DefaultOffboardReason+"\")")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only say what would happen")
	return cmd
}

// offboard runs the use case with a progress display and prints the report.
func (c *cli) offboard(ctx context.Context, svc *app.Service, numbers []string, opt app.OffboardOptions) error {
	update, finish := c.progress("offboard")
	opt.Progress = update
	rep, err := svc.Offboard(ctx, numbers, opt)
	finish()
	if app.ErrorCode(err) == app.EINVALID {
		return usageError(fmt.Errorf("--reason: %s", app.ErrorMessage(err)))
	} else if err != nil {
		return err
	}
	var out strings.Builder
	for _, r := range rep.Results {
		switch {
		case r.Outcome == app.OffboardSkipped:
			fmt.Fprintf(&out, "skipped %s: %s\n", r.Number, r.Detail)
		case r.Outcome == app.OffboardFailed && r.UserID != "":
			fmt.Fprintf(&out, "failed  %s userid=%s: %s\n", r.Number, r.UserID, r.Detail)
		case r.Outcome == app.OffboardFailed:
			fmt.Fprintf(&out, "failed  %s: %s\n", r.Number, r.Detail)
		case rep.DryRun:
			fmt.Fprintf(&out, "unbind  %s: %s\n", r.Number, r.Detail)
		}
	}
	out.WriteString(rep.Summary() + "\n")
	// Failure details quote WeCom and database errors, which may echo a secret.
	if _, err := io.WriteString(c.stdout, c.scrub(out.String())); err != nil {
		return err
	}
	if rep.Failed > 0 {
		return &exitError{code: exitOffboardFailed, err: errors.New("")} // the report above says why
	}
	return nil
}

// progress returns a Progress callback that draws a bar on stderr when it is a terminal and
// prints plain lines otherwise, and a function to call when the work is done.
func (c *cli) progress(what string) (update func(done, total int), finish func()) {
	f, ok := c.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func(done, total int) {
			fmt.Fprintf(c.stderr, "%s: %d/%d numbers done\n", what, done, total)
		}, func() {}
	}
	var bar *progressbar.ProgressBar
	update = func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total,
				progressbar.OptionSetWriter(f),
				progressbar.OptionSetDescription(what),
				progressbar.OptionShowCount(),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(0),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(f) }),
			)
		}
		_ = bar.Set(done) // writing to a terminal; nothing to do if it fails
	}
	return update, func() {
		if bar != nil && !bar.IsFinished() {
			_ = bar.Finish()
		}
	}
}

// readNumbersFile reads the numbers of an offboard file (see readNumbers).
func readNumbersFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	numbers, err := readNumbers(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return numbers, nil
}

// readNumbers reads numbers (学号/工号): one per line, or a CSV whose first row is a header naming
// a "number" column (other columns are ignored). A UTF-8 BOM, CRLF line ends, blank lines, rows
// starting with # and empty cells are skipped; repeats are kept (app.Offboard drops them).
func readNumbers(r io.Reader) ([]string, error) {
	br := bufio.NewReader(r)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3) // the peeked bytes are buffered
	}
	cr := csv.NewReader(br)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.LazyQuotes = true
	col, header, first := 0, false, true
	var numbers []string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			if i := slices.IndexFunc(rec, isNumberHeader); i >= 0 {
				col, header = i, true
				continue
			}
		}
		if strings.HasPrefix(strings.TrimSpace(rec[0]), "#") {
			continue
		}
		if !header && countNonEmpty(rec) > 1 {
			return nil, fmt.Errorf("line %d: several columns, but the first row is no header with a \"number\" column", line)
		}
		if col >= len(rec) {
			return nil, fmt.Errorf("line %d: no \"number\" column", line)
		}
		n := strings.TrimSpace(rec[col])
		if n == "" {
			continue
		}
		if len(n) > 64 || strings.ContainsFunc(n, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return nil, fmt.Errorf("line %d: %q is not a number", line, n)
		}
		numbers = append(numbers, n)
	}
	if len(numbers) == 0 {
		return nil, errors.New("no numbers in the file")
	}
	return numbers, nil
}

func isNumberHeader(field string) bool { return strings.EqualFold(strings.TrimSpace(field), "number") }

func countNonEmpty(rec []string) int {
	n := 0
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			n++
		}
	}
	return n
}
