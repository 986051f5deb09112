// Command dcsync is the operator's tool for a dcsync deployment whose audit
// log is in Elasticsearch.
//
//	dcsync trace [flags] <request-id>
//	    prints a request's timeline across datacenters: every stage each
//	    datacenter logged, in the order they happened.
//
//	dcsync reconcile --once --dc NAME --peer NAME=URL [--peer ...] [flags]
//	    runs one reconciler pass for datacenter NAME: re-sends its writes of
//	    the window that a peer has not applied, over the HTTP transport, and
//	    prints the report. The shared secret of the peers is read from the
//	    file --secret-file, or else from $DCSYNC_SECRET. The window starts at
//	    the checkpoint kept in Elasticsearch (minus --overlap), or --lookback
//	    ago without one, and ends --grace ago.
//
//	    With --redis, the pass takes the datacenter's leader lock first, as
//	    the services' own reconcilers do; --dry-run reports what it would
//	    re-send and sends, records and saves nothing.
//
//	dcsync status [-json] URL
//	    prints a running datacenter's status page data (package admin),
//	    as text or JSON; exits 3 when the datacenter is not ready.
//
//	dcsync deadletters list|redrive --redis URL --dc NAME [flags]
//	    lists, or hands back to their streams, the dead letters of the MQ
//	    wiring (transport/redis).
//
//	dcsync version
//	    prints the version of dcsync and of Go the command was built with.
//
// Trace and reconcile take --elastic (default $DCSYNC_ELASTIC_URL, else
// http://127.0.0.1:9200), --index-prefix (default dcsync-audit), and for a
// secured cluster --elastic-user and $DCSYNC_ELASTIC_PASSWORD, or
// $DCSYNC_ELASTIC_API_KEY, and --elastic-ca (default $DCSYNC_ELASTIC_CA).
// Trace only reads: it creates nothing in Elasticsearch and spools nothing.
// Long operations show a progress line on a terminal and stay quiet
// otherwise.
//
// Exit status: 0 on success, 1 on an error, 2 on bad usage, and 3 when a
// reconcile pass left writes still missing in some peer or found writes it
// cannot repair (orphaned: no source record) or records it could not read,
// or status found the datacenter not ready.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dcsync/dcsync"
	esaudit "github.com/dcsync/dcsync/audit/elastic"
	dchttp "github.com/dcsync/dcsync/transport/http"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitFailing = 3
)

const usage = `usage:
  dcsync trace [flags] <request-id>
  dcsync reconcile --once --dc NAME --peer NAME=URL [--peer ...] [flags]
  dcsync status [-json] URL
  dcsync deadletters list|redrive --redis URL --dc NAME [flags]
  dcsync version
run "dcsync <command> -h" for the flags of a command`

// run runs the command line args and returns the exit status. getenv reads
// the environment.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "trace":
		err = trace(ctx, args[1:], stdout, stderr, getenv)
	case "reconcile":
		var failing bool
		failing, err = reconcile(ctx, args[1:], stdout, stderr, getenv, newHTTPSender)
		if err == nil && failing {
			return exitFailing
		}
	case "status":
		var ready bool
		ready, err = status(ctx, args[1:], stdout, stderr)
		if err == nil && !ready {
			return exitFailing
		}
	case "deadletters":
		err = deadLetters(ctx, args[1:], stdout, stderr, getenv)
	case "version":
		err = version(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "dcsync: unknown command %q\n%s\n", args[0], usage)
		return exitUsage
	}
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "dcsync:", err)
		return exitUsage
	case err != nil:
		fmt.Fprintln(stderr, "dcsync:", err)
		return exitError
	}
	return exitOK
}

// usageError is a command line the commands cannot run.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// auditFlags are the flags that reach the audit log.
type auditFlags struct {
	url, prefix, spool string
	readOnly           bool // the command only reads: it spools nothing
	sec                elasticSecurity
}

func (a *auditFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("DCSYNC_ELASTIC_URL")
	if def == "" {
		def = "http://127.0.0.1:9200"
	}
	fs.StringVar(&a.url, "elastic", def, "Elasticsearch `URL`, comma-separated for several nodes (default $DCSYNC_ELASTIC_URL, else http://127.0.0.1:9200)")
	fs.StringVar(&a.prefix, "index-prefix", "dcsync-audit", "index prefix of the audit log")
	if !a.readOnly {
		fs.StringVar(&a.spool, "spool-dir", "", "where records wait while Elasticsearch is unreachable (default: a free slot of the user cache directory's dcsync/spool/<prefix>)")
	}
	a.sec.register(fs, getenv)
}

// open opens the audit log. Its logger writes warnings to stderr.
func (a *auditFlags) open(ctx context.Context, stderr io.Writer) (*esaudit.Log, error) {
	cfg, err := a.config(stderr)
	if err != nil {
		return nil, err
	}
	return esaudit.New(ctx, cfg)
}

// config returns the audit log's configuration.
func (a *auditFlags) config(stderr io.Writer) (esaudit.Config, error) {
	cfg := esaudit.Config{URLs: strings.Split(a.url, ","), IndexPrefix: a.prefix, SpoolDir: a.spool,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	return cfg, a.sec.apply(&cfg)
}

// parse parses args into fs. Help (-h) goes to w; an error is returned
// for run to print, once, with a pointer to the help.
func parse(fs *flag.FlagSet, args []string, w io.Writer) error {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(w)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return usageError{fmt.Sprintf("%s: %v (see dcsync %s -h)", fs.Name(), err, fs.Name())}
	}
	return nil
}

// newSender builds the Sender that reaches a peer.
type newSender func(from, peer, url string, secret []byte) (dcsync.Sender, error)

func newHTTPSender(from, _, url string, secret []byte) (dcsync.Sender, error) {
	return dchttp.NewSender(dchttp.SenderConfig{URL: url, From: from, Secret: secret})
}
