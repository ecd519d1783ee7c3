package apiserver

import (
	"net/http"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// podURL signs a gateway link: POST /v1/pods/{id}/url {port, ttl}.
func (s *Server) podURL(w http.ResponseWriter, r *http.Request, id string) {
	var req api.URLRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Port != "" {
		if err := errdefs.ValidateID("port", req.Port); err != nil {
			s.writeError(w, r, &fieldError{field: "port", err: err})
			return
		}
	}
	if req.TTL < 0 {
		s.writeError(w, r, badField("ttl", "must not be negative, got %s", req.TTL))
		return
	}
	u, err := s.svc.URL(r.Context(), id, req)
	s.reply(w, r, u, err)
}

// revokeURLs: POST /v1/pods/{id}/url/revoke, 204.
func (s *Server) revokeURLs(w http.ResponseWriter, r *http.Request, id string) {
	if err := s.svc.RevokeURLs(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
