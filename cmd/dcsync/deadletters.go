package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
	dcredis "github.com/dcsync/dcsync/transport/redis"
)

// deadLetters lists or redrives the dead letters of the MQ wiring.
func deadLetters(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("deadletters", flag.ContinueOnError)
	var (
		url, dc, prefix, after string
		count                  int64
		asJSON                 bool
	)
	fs.StringVar(&url, "redis", getenv("DCSYNC_REDIS_URL"), "the datacenter's Redis `URL`, redis://[user:password@]host:port/db (default $DCSYNC_REDIS_URL)")
	fs.StringVar(&dc, "dc", "", "the datacenter whose dead letters to read (required)")
	fs.StringVar(&prefix, "prefix", "dcsync", "key prefix of the MQ wiring, as its NodeConfig.Prefix")
	fs.StringVar(&after, "after", "", "list: start after the dead letter with this `ID`")
	fs.Int64Var(&count, "n", 0, "how many at most; 0 means 100 for list, all for redrive")
	fs.BoolVar(&asJSON, "json", false, "list: print JSON lines")
	peers := peerFlags{}
	fs.Var(peers, "peer", "redrive: a peer as NAME=URL of its Redis, as in NodeConfig.Peers; repeat for each peer (required to redrive reship hops)")
	fs.Usage = usageFunc(fs, "dcsync deadletters list|redrive --redis URL --dc NAME [flags]",
		"dcsync deadletters list --redis redis://10.0.0.7:6379 --dc eu\ndcsync deadletters redrive --redis redis://10.0.0.7:6379 --dc eu")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if err := parse(fs, args, stderr); err != nil {
			return err
		}
		return usageError{"deadletters needs list or redrive"}
	}
	cmd := args[0]
	if err := parse(fs, args[1:], stderr); err != nil {
		return err
	}
	switch {
	case cmd != "list" && cmd != "redrive":
		return usageError{fmt.Sprintf("deadletters: unknown command %q, want list or redrive", cmd)}
	case fs.NArg() != 0:
		return usageError{"deadletters " + cmd + " " + errNoArgs.Error()}
	case url == "" || dc == "":
		return usageError{"deadletters needs --redis and --dc"}
	}
	opts, err := goredis.ParseURL(url)
	if err != nil {
		return usageError{fmt.Sprintf("--redis: %v", err)}
	}
	client := goredis.NewClient(opts)
	defer client.Close()
	cfg := dcredis.NodeConfig{DC: dc, Client: client, Prefix: prefix, Peers: map[string]goredis.UniversalClient{}}
	for name, u := range peers {
		o, err := goredis.ParseURL(u)
		if err != nil {
			return usageError{fmt.Sprintf("--peer %s: %v", name, err)}
		}
		c := goredis.NewClient(o)
		defer c.Close()
		cfg.Peers[name] = c
	}
	node, err := dcredis.NewNode(cfg)
	if err != nil {
		return err
	}
	if cmd == "list" {
		return listDeadLetters(ctx, stdout, node, after, or(count, 100), asJSON)
	}
	return redrive(ctx, stdout, stderr, client, node, dc, prefix, count, len(peers) > 0)
}

func or(v, def int64) int64 {
	if v <= 0 {
		return def
	}
	return v
}

func listDeadLetters(ctx context.Context, w io.Writer, node *dcredis.Node, after string, count int64, asJSON bool) error {
	dls, err := node.DeadLetters(ctx, after, count)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		for _, d := range dls {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOP\tREQUEST\tDELIVERIES\tREASON")
	for _, d := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", d.ID, d.Hop, dash(d.RequestID), d.Deliveries, d.Reason)
	}
	return tw.Flush()
}

// redrive hands every dead letter that carries its request back to the
// stream of its hop — reship hops to the outbound stream, collect and apply
// hops to the apply stream — and deletes it from the dead-letter stream.
// A dead letter without a decodable request stays.
func redrive(ctx context.Context, stdout, stderr io.Writer, client *goredis.Client, node *dcredis.Node,
	dc, prefix string, limit int64, peers bool) error {
	dead := dcredis.Key(prefix, dc, "dead")
	total, err := client.XLen(ctx, dead).Result()
	if err != nil {
		return fmt.Errorf("deadletters: %w", err)
	}
	if limit > 0 {
		total = min(total, limit)
	}
	prog := newProgress(stderr, "redrive", int(total))
	defer prog.done()
	var redriven, kept int
	after := ""
	for limit <= 0 || int64(redriven+kept) < limit {
		page := int64(256)
		if limit > 0 {
			page = min(page, limit-int64(redriven+kept))
		}
		dls, err := node.DeadLetters(ctx, after, page)
		if err != nil {
			return err
		}
		if len(dls) == 0 {
			break
		}
		for _, d := range dls {
			after = d.ID
			if d.Request == nil {
				kept++
				continue
			}
			if strings.HasPrefix(d.Hop, "reship:") && !peers {
				return usageError{fmt.Sprintf("dead letter %s is of hop %s: redrive needs the peers (--peer NAME=URL)", d.ID, d.Hop)}
			}
			if err := redriveOne(ctx, node, d); err != nil {
				return fmt.Errorf("redrive %s: %w", d.ID, err)
			}
			if err := client.XDel(ctx, dead, d.ID).Err(); err != nil {
				return fmt.Errorf("redrive %s: delete the dead letter: %w", d.ID, err)
			}
			redriven++
		}
		prog.add(len(dls))
	}
	prog.done()
	fmt.Fprintf(stdout, "redriven %d, kept %d without a request\n", redriven, kept)
	return nil
}

func redriveOne(ctx context.Context, node *dcredis.Node, d dcredis.DeadLetter) error {
	if strings.HasPrefix(d.Hop, "reship:") {
		// The outbound stream feeds every peer; the others drop it as a
		// duplicate.
		return node.Reship(ctx, d.Request)
	}
	return node.Handoff().ProcessBatch(ctx, []*dcsync.Request{d.Request})
}
