package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Commands are the hidden commands `ripcord demo` runs its world with:
// the service each built artifact launches, the traffic generator and
// the backup job.
func Commands() []*cobra.Command {
	return []*cobra.Command{serviceCommand(), trafficCommand(), backupJobCommand()}
}

// stopContext ends on SIGTERM or an interrupt: a local target stops a
// release with SIGTERM, and the service must flush its events first.
func stopContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
}

func serviceCommand() *cobra.Command {
	var (
		name    string
		version string
		port    int
		check   bool
	)
	cmd := &cobra.Command{
		Use:   "service --version V [--name api|web] [--port N]",
		Short: "Run a demo service (port also from $PORT; Sentry DSN from $SENTRY_DSN, environment from $SENTRY_ENVIRONMENT, data dir from $DEMO_DATA)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := stopContext(cmd)
			defer stop()
			if check {
				return checkService(ctx, name, version, cmd.OutOrStdout())
			}
			if !cmd.Flags().Changed("port") {
				p, err := portFromEnv()
				if err != nil {
					return err
				}
				port = p
			}
			return Service(ctx, ServiceOptions{
				Name: name, Port: port, Version: version, DSN: os.Getenv("SENTRY_DSN"),
				Environment: os.Getenv("SENTRY_ENVIRONMENT"), DataDir: dataDir(), Log: cmd.ErrOrStderr(),
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "api", "the service this process is: api, or web (the storefront)")
	cmd.Flags().StringVar(&version, "version", "", "the release this process runs (required)")
	cmd.Flags().IntVar(&port, "port", 0, "port on 127.0.0.1 (default $PORT)")
	cmd.Flags().BoolVar(&check, "check", false, "start on a spare port, check the answers, and exit")
	_ = cmd.MarkFlagRequired("version")
	cmd.Hidden = true
	return cmd
}

func portFromEnv() (int, error) {
	v := os.Getenv("PORT")
	if v == "" {
		return 0, errors.New("no port: pass --port or set PORT")
	}
	p, err := strconv.Atoi(v)
	if err != nil || p <= 0 || p > 65535 {
		return 0, fmt.Errorf("PORT=%q is not a port number", v)
	}
	return p, nil
}

func dataDir() string {
	if d := os.Getenv("DEMO_DATA"); d != "" {
		return d
	}
	return "."
}

// checkService starts the service on a spare port with a throwaway data
// dir and no Sentry reporting, and checks what it answers: the pipeline's
// test stage. Checkout is not judged, as its failures are random.
func checkService(ctx context.Context, name, version string, out io.Writer) error {
	data, err := os.MkdirTemp("", "ripcord-demo-check-")
	if err != nil {
		return fmt.Errorf("checking the service: %w", err)
	}
	defer os.RemoveAll(data)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- Service(ctx, ServiceOptions{Name: name, Version: version, DataDir: data, Seed: 1,
			Ready: func(addr string) { ready <- addr }})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-served:
		return fmt.Errorf("checking the service: it did not start: %w", err)
	case <-time.After(10 * time.Second):
		return errors.New("checking the service: it did not start within 10s")
	}
	err = checkAnswers(ctx, "http://"+addr, name, version, out)
	cancel()
	if serveErr := <-served; err == nil && serveErr != nil {
		err = fmt.Errorf("checking the service: stopping it: %w", serveErr)
	}
	return err
}

func checkAnswers(ctx context.Context, base, name, version string, out io.Writer) error {
	if name == "" {
		name = "api"
	}
	checks := []struct{ path, want string }{
		{"/healthz", "ok"},
		{"/", name + " " + version},
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, c := range checks {
		got, err := firstLine(ctx, client, base+c.path)
		if err != nil {
			return fmt.Errorf("checking the service: GET %s: %w", c.path, err)
		}
		if got != c.want {
			return fmt.Errorf("checking the service: GET %s answered %q, want %q", c.path, got, c.want)
		}
		fmt.Fprintf(out, "ok   GET %-9s -> 200 %q\n", c.path, got)
	}
	return nil
}

// firstLine is the first line of a 200 answer's body.
func firstLine(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	line, _, _ := strings.Cut(string(body), "\n")
	return line, nil
}

func trafficCommand() *cobra.Command {
	var rate int
	cmd := &cobra.Command{
		Use:   "traffic URL... [--rate N]",
		Short: "Send steady requests to each URL until stopped",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, urls []string) error {
			ctx, stop := stopContext(cmd)
			defer stop()
			return Traffic(ctx, urls, rate)
		},
	}
	cmd.Flags().IntVar(&rate, "rate", 5, "requests a second to each URL")
	cmd.Hidden = true
	return cmd
}

func backupJobCommand() *cobra.Command {
	var (
		db, dir string
		every   time.Duration
		keep    int
	)
	cmd := &cobra.Command{
		Use:   "backup-job --db FILE --dir DIR [--every 1m] [--keep N]",
		Short: "Back up a SQLite database into a directory at a steady interval",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := stopContext(cmd)
			defer stop()
			fmt.Fprintf(cmd.ErrOrStderr(), "backing up %s into %s every %v, keeping %d\n", db, dir, every, keep)
			return BackupJob(ctx, db, dir, every, keep)
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "the SQLite database (created when absent)")
	cmd.Flags().StringVar(&dir, "dir", "", "where backups go")
	cmd.Flags().DurationVar(&every, "every", time.Minute, "time between backups")
	cmd.Flags().IntVar(&keep, "keep", ordersBackupKeep, "backups kept")
	_ = cmd.MarkFlagRequired("db")
	_ = cmd.MarkFlagRequired("dir")
	cmd.Hidden = true
	return cmd
}
