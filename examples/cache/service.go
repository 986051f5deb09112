package main

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/processor/rediscache"
)

// maxValue bounds a PUT body, as dcsync.DefaultMaxPayload bounds a write.
const maxValue = dcsync.DefaultMaxPayload

// service is one datacenter's key-value API: writes go through the Syncer,
// reads straight to the local Redis.
type service struct {
	syncer *dcsync.Syncer
	cache  *rediscache.Cache
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", s.put)
	mux.HandleFunc("DELETE /kv/{key}", s.delete)
	mux.HandleFunc("GET /kv/{key}", s.get)
	return mux
}

func (s *service) put(w http.ResponseWriter, r *http.Request) {
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValue))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	s.write(w, r, &dcsync.Request{Key: r.PathValue("key"), Op: rediscache.OpSet, Payload: value})
}

func (s *service) delete(w http.ResponseWriter, r *http.Request) {
	s.write(w, r, &dcsync.Request{Key: r.PathValue("key"), Op: rediscache.OpDelete})
}

// write writes req here and ships it, waiting for the other datacenter
// when asked to with ?wait=all.
func (s *service) write(w http.ResponseWriter, r *http.Request, req *dcsync.Request) {
	var opts []dcsync.WriteOption
	if r.URL.Query().Get("wait") == "all" {
		opts = append(opts, dcsync.WaitAll())
	}
	err := s.syncer.Write(r.Context(), req, opts...)
	if req.Version != 0 {
		w.Header().Set("X-Request-Id", req.ID)
		versionHeaders(w.Header(), req.Version, req.Origin)
	}
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, dcsync.ErrInvalid):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, dcsync.ErrNotReplicated):
		// Applied here; the reconciler goes on delivering it.
		http.Error(w, err.Error(), http.StatusAccepted)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (s *service) get(w http.ResponseWriter, r *http.Request) {
	e, found, err := s.cache.GetVersioned(r.Context(), r.PathValue("key"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if found {
		versionHeaders(w.Header(), e.Version, e.Origin)
	}
	if !found || e.Deleted {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(e.Value)
}

func versionHeaders(h http.Header, version uint64, origin string) {
	h.Set("X-Version", strconv.FormatUint(version, 10))
	h.Set("X-Origin", origin)
}
