package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func (s *Server) routes() {
	allowed := map[string][]string{} // path pattern -> methods
	handle := func(method, path string, h http.HandlerFunc) {
		s.mux.HandleFunc(method+" "+path, h)
		allowed[path] = append(allowed[path], method)
	}
	handle("GET", "/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	handle("GET", "/v1/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.VersionInfo{Version: s.version, APIVersion: api.APIVersion, GoVersion: runtime.Version()})
	})
	handle("GET", "/v1/node", s.nodeStatus)
	handle("POST", "/v1/pods", s.create)
	handle("GET", "/v1/pods", s.list)
	handle("GET", "/v1/pods/{id}", s.withID(s.get))
	handle("DELETE", "/v1/pods/{id}", s.withID(s.delete))
	handle("POST", "/v1/pods/{id}/start", s.withID(s.start))
	handle("POST", "/v1/pods/{id}/stop", s.withID(s.stop))
	handle("GET", "/v1/pods/{id}/events", s.withID(s.events))
	handle("GET", "/v1/events", func(w http.ResponseWriter, r *http.Request) { s.events(w, r, "") })
	handle("GET", "/v1/pods/{id}/logs", s.withID(s.logs))
	handle("POST", "/v1/pods/{id}/exec", s.withID(s.exec))
	handle("GET", "/v1/pods/{id}/metrics", s.withID(s.metrics))
	handle("GET", "/v1/pods/{id}/health", s.withID(s.health))
	handle("GET", "/v1/pods/{id}/services", s.withID(s.serviceList))
	handle("POST", "/v1/pods/{id}/services/{name}/{op}", s.withID(s.serviceControl))
	handle("POST", "/v1/pods/{id}/url", s.withID(s.podURL))
	handle("POST", "/v1/pods/{id}/url/revoke", s.withID(s.revokeURLs))
	handle("POST", "/v1/pods/{id}/hibernate", s.withID(s.hibernate))
	handle("POST", "/v1/pods/{id}/wake", s.withID(s.wake))
	handle("POST", "/v1/pods/{id}/fork", s.withID(s.fork))
	handle("POST", "/v1/snapshots", s.snapshotTemplate)
	handle("GET", "/v1/snapshots", s.listSnapshots)
	handle("DELETE", "/v1/snapshots/{key}", s.removeSnapshot)
	// The mux's own 404 and 405 pages are text; ours are JSON. A pattern
	// without a method matches only the methods no other pattern takes.
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			s.writeError(w, r, fmt.Errorf("%s %s: method not allowed (allowed: %s): %w", r.Method, r.URL.Path, allow, errMethod))
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fmt.Errorf("%s %s: no such endpoint: %w", r.Method, r.URL.Path, errdefs.ErrNotFound))
	})
}

// errMethod is an invalid argument that the API answers with 405.
var errMethod = fmt.Errorf("method not allowed: %w", errdefs.ErrInvalidArgument)

// rejectUncleanPaths answers a path with "..", "." or "//" in it with
// 400: the mux would redirect it to its cleaned form, which for an API
// only hides a client bug (or an attempt to walk out of /v1/pods/{id}).
func (s *Server) rejectUncleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		clean := p == "/" || (strings.HasPrefix(p, "/") && path.Clean(p) == strings.TrimSuffix(p, "/"))
		if !clean {
			s.writeError(w, r, fmt.Errorf("path %q: not in canonical form: %w", p, errdefs.ErrInvalidArgument))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withID validates the {id} path value (an ID or a name: both must be
// safe path elements) before the handler, and so the service, sees it.
func (s *Server) withID(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := errdefs.ValidateID("pod", id); err != nil {
			s.writeError(w, r, &fieldError{field: "id", err: err})
			return
		}
		h(w, r, id)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(api.ErrorBody{})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	body, status := errorBody(err)
	if status >= 500 {
		s.log.Warn("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, body)
}

// decodeBody decodes a JSON request body strictly and within the size limit.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, s.maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return fmt.Errorf("request body: larger than %d bytes: %w", mbe.Limit, errdefs.ErrInvalidArgument)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("request body: empty, want a JSON object: %w", errdefs.ErrInvalidArgument)
		case errors.As(err, &se):
			return fmt.Errorf("request body: invalid JSON at offset %d: %s: %w", se.Offset, se.Error(), errdefs.ErrInvalidArgument)
		case errors.As(err, &te):
			return badField(te.Field, "want %s, got JSON %s", te.Type, te.Value)
		default:
			// DisallowUnknownFields: `json: unknown field "x"`, and io errors.
			return fmt.Errorf("request body: %s: %w", err.Error(), errdefs.ErrInvalidArgument)
		}
	}
	// Exactly one value: trailing garbage is a client bug worth reporting.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("request body: larger than %d bytes: %w", mbe.Limit, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("request body: trailing data after the JSON object: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

func boolQuery(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badField(name, "want true or false, got %q", v)
	}
	return b, nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req api.CreateRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	wait, err := boolQuery(r, "wait")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req.Wait = req.Wait || wait
	if req.Template != "" {
		if err := errdefs.ValidateID("template", req.Template); err != nil {
			s.writeError(w, r, &fieldError{field: "template", err: err})
			return
		}
	}
	p, err := s.svc.Create(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	ps, err := s.svc.List(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ps == nil {
		ps = []*api.Pod{}
	}
	writeJSON(w, http.StatusOK, ps)
}

// reply writes v, or err.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, id string) {
	p, err := s.svc.Get(r.Context(), id)
	s.reply(w, r, p, err)
}

func (s *Server) start(w http.ResponseWriter, r *http.Request, id string) {
	p, err := s.svc.Start(r.Context(), id)
	s.reply(w, r, p, err)
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request, id string) {
	p, err := s.svc.Stop(r.Context(), id)
	s.reply(w, r, p, err)
}

func (s *Server) hibernate(w http.ResponseWriter, r *http.Request, id string) {
	p, err := s.svc.Hibernate(r.Context(), id)
	s.reply(w, r, p, err)
}

func (s *Server) wake(w http.ResponseWriter, r *http.Request, id string) {
	p, err := s.svc.Wake(r.Context(), id)
	s.reply(w, r, p, err)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, id string) {
	if err := s.svc.Delete(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request, id string) {
	m, err := s.svc.Metrics(r.Context(), id)
	s.reply(w, r, m, err)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request, id string) {
	h, err := s.svc.Health(r.Context(), id)
	s.reply(w, r, h, err)
}

func (s *Server) serviceList(w http.ResponseWriter, r *http.Request, id string) {
	st, err := s.svc.ServiceControl(r.Context(), id, "ls", "")
	s.reply(w, r, st, err)
}

func (s *Server) serviceControl(w http.ResponseWriter, r *http.Request, id string) {
	name, op := r.PathValue("name"), r.PathValue("op")
	if err := errdefs.ValidateID("service", name); err != nil {
		s.writeError(w, r, &fieldError{field: "name", err: err})
		return
	}
	switch op {
	case "start", "stop", "restart":
	default:
		s.writeError(w, r, badField("op", "want start, stop or restart, got %q", op))
		return
	}
	st, err := s.svc.ServiceControl(r.Context(), id, op, name)
	s.reply(w, r, st, err)
}

// events streams newline-delimited JSON events. A pod-scoped stream first
// checks the pod exists, so a typo gets a 404 rather than an empty stream.
func (s *Server) events(w http.ResponseWriter, r *http.Request, id string) {
	q := r.URL.Query()
	var since uint64
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.writeError(w, r, badField("since", "want a non-negative integer, got %q", v))
			return
		}
		since = n
	}
	follow, err := boolQuery(r, "follow")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	if id != "" {
		if _, err := s.svc.Get(ctx, id); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc.Flush() // the client knows it is subscribed even before the first event
	enc := json.NewEncoder(w)
	err = s.svc.Events(ctx, id, since, follow, func(ev api.Event) error {
		if err := enc.Encode(ev); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && ctx.Err() == nil {
		body, _ := errorBody(err)
		enc.Encode(api.EventLine{Error: &body})
		rc.Flush()
	}
}

// logs streams a service's log as chunked text. Errors before the first
// byte get a proper status; later ones go into the Pinacle-Error trailer.
func (s *Server) logs(w http.ResponseWriter, r *http.Request, id string) {
	q := r.URL.Query()
	service := q.Get("service")
	if service != "" {
		if err := errdefs.ValidateID("service", service); err != nil {
			s.writeError(w, r, &fieldError{field: "service", err: err})
			return
		}
	}
	tail := -1
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			s.writeError(w, r, badField("tail", "want a number >= 0 (or -1 for all), got %q", v))
			return
		}
		tail = n
	}
	follow, err := boolQuery(r, "follow")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	if _, err := s.svc.Get(ctx, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	lw := &lazyWriter{w: w, rc: http.NewResponseController(w)}
	w.Header().Set("Trailer", api.ErrorTrailer)
	if follow {
		lw.start()
	}
	err = s.svc.Logs(ctx, id, service, tail, follow, lw)
	lw.close()
	switch {
	case err != nil && !lw.started:
		w.Header().Del("Trailer")
		s.writeError(w, r, err)
	case err != nil && ctx.Err() == nil:
		body, _ := errorBody(err)
		b, _ := json.Marshal(body)
		w.Header().Set(api.ErrorTrailer, string(b))
	default:
		lw.start()
	}
}

// lazyWriter sends the 200 on the first write, and flushes every write
// so a follower sees lines as they come.
type lazyWriter struct {
	mu      sync.Mutex // a service may write from another goroutine
	closed  bool       // Logs returned: later writes must not touch w
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (l *lazyWriter) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

func (l *lazyWriter) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.startLocked()
}

func (l *lazyWriter) startLocked() {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		l.w.Header().Set("X-Content-Type-Options", "nosniff")
		l.w.WriteHeader(http.StatusOK)
		l.rc.Flush()
	}
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, io.ErrClosedPipe
	}
	l.startLocked()
	n, err := l.w.Write(p)
	if err != nil {
		return n, err
	}
	return n, l.rc.Flush()
}

func (s *Server) nodeStatus(w http.ResponseWriter, r *http.Request) {
	ns, ok := s.svc.(api.NodeStatuser)
	if !ok {
		s.writeError(w, r, fmt.Errorf("node status: this service does not report one: %w", errdefs.ErrNotFound))
		return
	}
	st, err := ns.NodeStatus(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
