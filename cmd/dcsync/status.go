package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dcsync/dcsync/admin"
)

// status prints the status of a running datacenter, read from its status
// page's status.json, and reports whether it is ready.
func status(ctx context.Context, args []string, stdout, stderr io.Writer) (ready bool, err error) {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the status as JSON, as the page serves it")
	timeout := fs.Duration("timeout", 10*time.Second, "bound of the request")
	fs.Usage = usageFunc(fs, "dcsync status [-json] URL",
		"dcsync status http://10.0.0.5:8080/status/\n# URL is where the service mounts admin.Handler")
	if err := parse(fs, args, stderr); err != nil {
		return false, err
	}
	if fs.NArg() != 1 {
		return false, usageError{"status takes the URL of a status page"}
	}
	url := strings.TrimSuffix(fs.Arg(0), "/") + "/status.json"
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, usageError{fmt.Sprintf("status: %v", err)}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("status: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status: %s answered %s", url, res.Status)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return false, fmt.Errorf("status: %w", err)
	}
	var st admin.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return false, fmt.Errorf("status: decode %s: %w", url, err)
	}
	ready = st.Health == nil || st.Health.Ready
	if *asJSON {
		_, err := stdout.Write(body)
		return ready, err
	}
	printStatus(stdout, &st)
	return ready, nil
}

func printStatus(w io.Writer, st *admin.Status) {
	fmt.Fprintf(w, "datacenter %s  at %s  written %d  rejected %d\n", st.DC, stamp(st.Time), st.Written, st.Rejected)
	if h := st.Health; h != nil {
		if h.Ready {
			fmt.Fprintln(w, "ready")
		} else {
			fmt.Fprintln(w, "NOT READY:")
			for _, r := range h.Reasons {
				fmt.Fprintln(w, "  "+r)
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPEER\tSTATE\tBACKLOG\tIN FLIGHT\tSHIPPED\tFAILED\tCOLLECTED\tLAG P50\tLAG P99")
	for _, p := range st.Peers {
		state, p50, p99 := "up", "-", "-"
		if p.Down {
			state = "down since " + stamp(p.DownSince)
		}
		if n := len(p.Lag); n > 0 {
			p50, p99 = p.Lag[n-1].P50.String(), p.Lag[n-1].P99.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", p.Name, state, p.Backlog, p.InFlight, p.Shipped,
			p.Failed, p.Collected, p50, p99)
	}
	tw.Flush()
	if a := st.Audit; a != nil {
		fmt.Fprintf(w, "\naudit: appended %d  indexed %d  rejected %d  spooled %d  in spool %d (%d bytes)"+
			"  queued %d  dropped %d  full waits %d\n",
			a.Appended, a.Indexed, a.Rejected, a.Spooled, a.Pending, a.SpoolBytes, a.Queued, a.Dropped, a.FullWaits)
	}
	if len(st.Refused) > 0 {
		fmt.Fprintf(w, "refused from peers: unauthenticated %d  invalid %d  too large %d  clock skew %d\n",
			st.Refused["unauthenticated"], st.Refused["invalid"], st.Refused["too_large"], st.Refused["clock_skew"])
	}
	if len(st.Passes) > 0 {
		p := st.Passes[0]
		fmt.Fprintf(w, "\nlast reconcile pass %s: scanned %d  repaired %d  failing %d  orphaned %d",
			stamp(p.Time), p.Report.Scanned, p.Report.Repaired, p.Report.Failing, p.Report.Orphaned)
		if p.Error != "" {
			fmt.Fprintf(w, "  error: %s", p.Error)
		}
		fmt.Fprintln(w)
	}
	if len(st.Failing) > 0 {
		fmt.Fprintf(w, "\nfailing writes: %d (dcsync trace ID shows one)\n", len(st.Failing))
		for i, f := range st.Failing {
			if i == 10 {
				fmt.Fprintf(w, "  ... and %d more\n", len(st.Failing)-i)
				break
			}
			fmt.Fprintf(w, "  %s  to %s  since %s  %s\n", f.ID, f.Peer, stamp(f.Since), f.Error)
		}
	}
	if len(st.DeadLetters) > 0 {
		fmt.Fprintf(w, "\ndead letters: %d (dcsync deadletters list)\n", len(st.DeadLetters))
	}
}
