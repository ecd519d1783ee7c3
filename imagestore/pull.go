package imagestore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Platform is the platform pulled from a multi-platform index.
var Platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

// isLoopback reports whether a registry host[:port] is on this machine, the
// registries Docker reaches over plain http without configuration.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainHTTPAllowed says whether we may talk plain http to host.
func (s *store) plainHTTPAllowed(host string) bool {
	return isLoopback(host) || s.opts.insecure[host] || s.httpMirrors[host]
}

// policyTransport enforces who may be reached over plain http (ggcr would
// also fall back to http for RFC 1918 addresses) and skips TLS
// verification only for registries named insecure.
type policyTransport struct {
	s                *store
	secure, insecure http.RoundTripper
}

func (t *policyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if req.URL.Scheme == "http" && !t.s.plainHTTPAllowed(host) {
		return nil, fmt.Errorf("plain http to %s refused: not a loopback registry, a configured insecure registry or an http mirror", host)
	}
	if t.s.opts.insecure[host] {
		return t.insecure.RoundTrip(req)
	}
	return t.secure.RoundTrip(req)
}

func (s *store) initTransport() {
	s.httpMirrors = map[string]bool{}
	for _, urls := range s.opts.mirrors {
		for _, u := range urls {
			if u.Scheme == "http" {
				s.httpMirrors[u.Host] = true
			}
		}
	}
	base := remote.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = max(s.opts.jobs, base.MaxIdleConnsPerHost)
	base.DisableCompression = true
	insecure := base.Clone()
	insecure.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for registries the operator named insecure
	s.transport = &policyTransport{s: s, secure: base, insecure: insecure}
}

// parseRef parses a user's reference, marking loopback and configured
// insecure registries so ggcr may use http.
func (s *store) parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image ref %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	if host := r.Context().RegistryStr(); isLoopback(host) || s.opts.insecure[host] {
		r, err = name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("image ref %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
		}
	}
	return r, nil
}

// sources lists where to fetch r from: its mirrors in order, then r itself.
func (s *store) sources(r name.Reference) []name.Reference {
	var out []name.Reference
	for _, u := range s.opts.mirrors[r.Context().RegistryStr()] {
		repo := r.Context().RepositoryStr()
		if u.Path != "" {
			repo = u.Path + "/" + repo
		}
		var nopts []name.Option
		if u.Scheme == "http" || isLoopback(u.Host) {
			nopts = append(nopts, name.Insecure)
		}
		rp, err := name.NewRepository(u.Host+"/"+repo, nopts...)
		if err != nil {
			s.opts.log.Warn("skipping mirror", "mirror", u.String(), "ref", r.Name(), "err", err)
			continue
		}
		switch t := r.(type) {
		case name.Tag:
			out = append(out, rp.Tag(t.TagStr()))
		case name.Digest:
			out = append(out, rp.Digest(t.DigestStr()))
		}
	}
	return append(out, r)
}

func (s *store) Pull(ctx context.Context, ref string, opts ...PullOption) (*Image, error) {
	po, err := applyPullOptions(opts)
	if err != nil {
		return nil, err
	}
	r, err := s.parseRef(ref)
	if err != nil {
		return nil, err
	}
	p := &progress{fn: po.progress, ref: r.Name()}
	lk, err := s.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()

	srcs := s.sources(r)
	var mirrorErrs []string
	for i, src := range srcs {
		img, err := s.pullFrom(ctx, src, r, p)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if i == len(srcs)-1 {
			if len(mirrorErrs) > 0 {
				return nil, fmt.Errorf("%w (after mirrors failed: %s)", err, strings.Join(mirrorErrs, "; "))
			}
			return nil, err
		}
		mirrorErrs = append(mirrorErrs, err.Error())
		s.opts.log.Warn("mirror failed, trying next source", "ref", r.Name(), "mirror", src.Context().RegistryStr(), "err", err)
	}
	panic("unreachable")
}

func (s *store) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(s.transport),
		remote.WithPlatform(Platform),
		remote.WithUserAgent(s.opts.userAgent),
		remote.WithJobs(s.opts.jobs),
	}
}

// pullFrom fetches src and stores it under the name orig.
func (s *store) pullFrom(ctx context.Context, src, orig name.Reference, p *progress) (*Image, error) {
	p.emit(Event{Phase: PhaseResolving})
	s.opts.log.Debug("resolving", "ref", orig.Name(), "source", src.Name())
	desc, err := remote.Get(src, s.remoteOptions(ctx)...)
	if err != nil {
		return nil, classifyRemote(orig.Name(), src, err)
	}
	img, err := desc.Image()
	if err != nil {
		if desc.MediaType.IsIndex() && !isTransportish(err) {
			return nil, fmt.Errorf("pull %s: no %s image in the index: %w", orig.Name(), Platform, errdefs.ErrNotFound)
		}
		return nil, classifyRemote(orig.Name(), src, err)
	}
	out, err := s.storeImage(ctx, img, []string{orig.Name()}, p)
	if err != nil {
		return nil, classifyRemote(orig.Name(), src, err)
	}
	return out, nil
}

func isTransportish(err error) bool {
	var te *transport.Error
	var ne net.Error
	return errors.As(err, &te) || errors.As(err, &ne)
}

// classifyRemote gives a registry failure its errdefs class and names the ref.
func classifyRemote(ref string, src name.Reference, err error) error {
	via := ""
	if src.Name() != ref {
		via = " via " + src.Context().RegistryStr()
	}
	for _, class := range []error{errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrUnavailable, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, class) {
			return fmt.Errorf("pull %s%s: %w", ref, via, err)
		}
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return fmt.Errorf("pull %s%s: %v: %w", ref, via, err, errdefs.ErrNotFound)
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return fmt.Errorf("pull %s%s: access denied (missing credentials, or no such repository): %v: %w", ref, via, err, errdefs.ErrNotFound)
			case transport.NameInvalidErrorCode, transport.TagInvalidErrorCode, transport.ManifestInvalidErrorCode:
				return fmt.Errorf("pull %s%s: %v: %w", ref, via, err, errdefs.ErrInvalidArgument)
			}
		}
		switch te.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("pull %s%s: %v: %w", ref, via, err, errdefs.ErrNotFound)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("pull %s%s: access denied (missing credentials, or no such repository): %v: %w", ref, via, err, errdefs.ErrNotFound)
		}
	}
	return fmt.Errorf("pull %s%s: registry unreachable or failing: %v: %w", ref, via, err, errdefs.ErrUnavailable)
}

func applyPullOptions(opts []PullOption) (pullOptions, error) {
	var po pullOptions
	for _, o := range opts {
		if err := o(&po); err != nil {
			return po, err
		}
	}
	return po, nil
}
