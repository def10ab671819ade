package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// defaultHealthURL is the readiness probe of a serve listening on the default server.addr.
const defaultHealthURL = "http://127.0.0.1:8080/readyz"

// healthcheckCmd asks a running serve's readiness probe: the container health check of the
// distroless image, which has no shell, curl or wget. It reads no config.
func (c *cli) healthcheckCmd() *cobra.Command {
	var (
		url     string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "exit 0 when a running serve answers its readiness probe with 200 (container health checks)",
		Long: "healthcheck GETs the readiness probe of a running serve (default " + defaultHealthURL + ")\n" +
			"and exits 0 on 200, 1 otherwise. It reads no config: pass --url when server.addr is not :8080.",
		Example: "  wecampus healthcheck\n  wecampus healthcheck --url http://127.0.0.1:9000/readyz",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			body, err := askReady(ctx, url)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "ok: %s\n", body)
			return err
		},
	}
	cmd.Flags().StringVar(&url, "url", defaultHealthURL, "the readiness URL to ask")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}

// askReady GETs url and returns its body on one line; any status but 200 is an error.
func askReady(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", usageError(fmt.Errorf("--url: %w", err))
	}
	// No proxy: the probe is for the service in this container or pod.
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024)) // the status decides; the body is a hint
	body := strings.Join(strings.Fields(string(b)), " ")
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("healthcheck: %s answered %d: %s", url, resp.StatusCode, body)
	}
	return body, nil
}
