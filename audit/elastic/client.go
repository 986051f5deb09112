package elastic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/olivere/elastic/v7"
)

// newClient returns an olivere client whose failures to reach
// Elasticsearch are plain errors matching ErrUnavailable. Left to itself,
// olivere reports them as net.Error or ErrNoClient, and its bulk workers
// then stop taking records until a node answers — which would hold the
// queue, and Close, for the whole outage instead of spooling.
func newClient(cfg Config) (*elastic.Client, error) {
	hc := cfg.HTTPClient
	if hc == nil {
		// No compression: on a datacenter's network it costs both ends
		// more CPU than it saves in bytes.
		hc = &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, DisableCompression: true,
			MaxIdleConnsPerHost: 2 * cfg.Workers, IdleConnTimeout: 90 * time.Second}}
	}
	opts := []elastic.ClientOptionFunc{elastic.SetURL(cfg.URLs...), elastic.SetSniff(false),
		elastic.SetHealthcheck(false)}
	opts = append(opts, cfg.ClientOptions...)
	opts = append(opts, elastic.SetHttpClient(unavailableDoer{hc}), elastic.SetRetrier(retrier{}),
		elastic.SetDecoder(decoder{}))
	client, err := elastic.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("elastic: client: %w", err)
	}
	return client, nil
}

// unavailableDoer wraps the errors of requests that got no response in
// ErrUnavailable, except those of a canceled context. It also trims the
// answers to bulk requests, which the BulkProcessor gives no way to.
type unavailableDoer struct{ c *http.Client }

// bulkFilter keeps of a bulk response what the Log reads: whether any item
// failed, and each item's status and error, in order. The rest — index, ID,
// version, shards, sequence number — made the answer ten times longer (259
// bytes a record against 25) for this process to read, and to gunzip where
// the HTTP client asks for compression; Elasticsearch spent no measurably
// different CPU either way.
const bulkFilter = "errors,items.*.status,items.*.error"

func (d unavailableDoer) Do(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/_bulk") {
		if q := req.URL.Query(); !q.Has("filter_path") {
			q.Set("filter_path", bulkFilter)
			req.URL.RawQuery = q.Encode()
		}
		req.Header.Set("Accept-Encoding", "identity") // too short to be worth compressing
	}
	res, err := d.c.Do(req)
	if err != nil && req.Context().Err() == nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return res, err
}

// retrier leaves retries to the bulk processor's backoff and the spool. It
// tries a request again only when olivere has marked every node dead after
// an earlier failure: that is olivere's bookkeeping, not an answer from
// Elasticsearch.
type retrier struct{}

func (retrier) Retry(ctx context.Context, n int, req *http.Request, _ *http.Response, err error) (time.Duration, bool, error) {
	switch {
	case err == nil || ctx.Err() != nil: // a response, or the caller gave up
		return 0, false, nil
	case req == nil && n <= 2:
		return 0, true, nil
	case errors.Is(err, ErrUnavailable):
		return 0, false, err
	}
	return 0, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// decoder decodes Elasticsearch's answers as olivere's default does, but
// for a bulk response without errors, which it leaves unread: nothing in
// its items is news, and reading them cost more than building the request.
type decoder struct{}

// bulkOK is how a bulk response without errors starts: {"errors":false,…
// trimmed by bulkFilter, {"took":12,"errors":false,… otherwise.
var bulkOK = []byte(`"errors":false,`)

func (decoder) Decode(data []byte, v any) error {
	if r, ok := v.(*elastic.BulkResponse); ok {
		if i := bytes.Index(data[:min(len(data), 40)], bulkOK); i > 0 {
			*r = elastic.BulkResponse{}
			return nil
		}
	}
	return json.Unmarshal(data, v)
}
