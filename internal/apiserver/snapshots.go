package apiserver

import (
	"net/http"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// fork is POST /v1/pods/{id}/fork: 201 with the new pod.
func (s *Server) fork(w http.ResponseWriter, r *http.Request, id string) {
	var req api.ForkRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := errdefs.ValidateID("pod name", req.Name); err != nil {
		s.writeError(w, r, &fieldError{field: "name", err: err})
		return
	}
	p, err := s.svc.Fork(r.Context(), id, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

// snapshotTemplate is POST /v1/snapshots: 201 with the snapshot.
func (s *Server) snapshotTemplate(w http.ResponseWriter, r *http.Request) {
	var req api.SnapshotRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := errdefs.ValidateID("template", req.Template); err != nil {
		s.writeError(w, r, &fieldError{field: "template", err: err})
		return
	}
	snap, err := s.svc.SnapshotTemplate(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, snap)
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.ListSnapshots(r.Context())
	s.reply(w, r, out, err)
}

func (s *Server) removeSnapshot(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.RemoveSnapshot(r.Context(), r.PathValue("key")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
