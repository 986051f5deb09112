package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	elasticv7 "github.com/olivere/elastic/v7"

	esaudit "github.com/dcsync/dcsync/audit/elastic"
)

// elasticSecurity are the flags that reach a secured Elasticsearch.
type elasticSecurity struct {
	user, password, apiKey, ca string
}

func (e *elasticSecurity) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&e.user, "elastic-user", getenv("DCSYNC_ELASTIC_USER"),
		"basic auth `user`; the password is read from $DCSYNC_ELASTIC_PASSWORD (default $DCSYNC_ELASTIC_USER)")
	fs.StringVar(&e.ca, "elastic-ca", getenv("DCSYNC_ELASTIC_CA"),
		"`file` of PEM CA certificates to verify Elasticsearch's TLS certificate (default $DCSYNC_ELASTIC_CA)")
	e.password, e.apiKey = getenv("DCSYNC_ELASTIC_PASSWORD"), getenv("DCSYNC_ELASTIC_API_KEY")
}

// apply sets cfg's client options and HTTP client from the flags.
func (e *elasticSecurity) apply(cfg *esaudit.Config) error {
	switch {
	case e.user != "" && e.apiKey != "":
		return usageError{"give either --elastic-user (with $DCSYNC_ELASTIC_PASSWORD) or $DCSYNC_ELASTIC_API_KEY, not both"}
	case e.user != "":
		cfg.ClientOptions = append(cfg.ClientOptions, elasticv7.SetBasicAuth(e.user, e.password))
	case e.apiKey != "":
		cfg.ClientOptions = append(cfg.ClientOptions,
			elasticv7.SetHeaders(http.Header{"Authorization": {"ApiKey " + e.apiKey}}))
	}
	if e.ca == "" {
		return nil
	}
	pem, err := os.ReadFile(e.ca)
	if err != nil {
		return fmt.Errorf("elastic CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("elastic CA: no PEM certificate in %s", e.ca)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	cfg.HTTPClient = &http.Client{Timeout: time.Minute, Transport: tr}
	return nil
}

// usageFunc returns a FlagSet's Usage: the synopsis, the flags with their
// defaults (once: a flag whose text names its default prints no other),
// and an example.
func usageFunc(fs *flag.FlagSet, synopsis, example string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\nflags:\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			name, text := flag.UnquoteUsage(f)
			line := "  -" + f.Name
			if name != "" {
				line += " " + name
			}
			fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(text, "\n", "\n    \t"))
			if !strings.Contains(text, "(default") && !zeroDefault(f) {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
		fmt.Fprintf(w, "\nexample:\n  %s\n", strings.ReplaceAll(strings.TrimSpace(example), "\n", "\n  "))
	}
}

func zeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "0s", "map[]", "[]":
		return true
	}
	return false
}

// progress shows how far a long operation is on a terminal, as one line
// rewritten in place at most ten times a second; elsewhere it prints
// nothing.
type progress struct {
	w     io.Writer
	on    bool
	label string
	total int // 0 when unknown
	n     int
	shown time.Time
}

// newProgress returns the progress of an operation on total items (0 when
// unknown), shown on w when w is a terminal.
func newProgress(w io.Writer, label string, total int) *progress {
	return &progress{w: w, on: isTerminal(w), label: label, total: total}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// add counts n more items done.
func (p *progress) add(n int) {
	p.n += n
	if p.on && time.Since(p.shown) >= 100*time.Millisecond {
		p.show()
	}
}

func (p *progress) show() {
	p.shown = time.Now()
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r%s %d/%d (%d%%)\x1b[K", p.label, p.n, p.total, p.n*100/p.total)
	} else {
		fmt.Fprintf(p.w, "\r%s %d\x1b[K", p.label, p.n)
	}
}

// done clears the line.
func (p *progress) done() {
	if p.on && !p.shown.IsZero() {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// errNoArgs is returned for commands given arguments they do not take.
var errNoArgs = errors.New("takes no arguments")
