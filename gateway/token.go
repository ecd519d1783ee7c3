package gateway

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
)

// keySize is the HMAC-SHA256 key length in bytes.
const keySize = 32

// tokenVersion prefixes every token, so the format can change without
// old tokens being misread.
const tokenVersion = "v1"

// Errors a token check returns; all of them mean 401.
var (
	errMalformed = errors.New("malformed token")
	errSignature = errors.New("bad token signature")
	errExpired   = errors.New("token expired")
	errRevoked   = errors.New("token revoked")
	errWrongHost = errors.New("token is for another pod or port")
)

// claims is what a token asserts: access to one port of one pod, for
// tokens of the pod's current epoch, until Expires.
type claims struct {
	Pod     string
	Port    string
	Epoch   uint64
	Expires time.Time
}

// signer signs and verifies tokens with one HMAC-SHA256 key.
type signer struct{ key []byte }

// loadKey reads the signing key at path, or creates it (random, 0600, in a
// 0700 directory) when there is none. A key of the wrong size is an error,
// never silently replaced: replacing it would revoke every link.
func loadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(b) != keySize {
			return nil, fmt.Errorf("gateway key %s: %d bytes, want %d: %w", path, len(b), keySize, errdefs.ErrInvalidArgument)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("gateway key %s: %w", path, err)
			}
		}
		return b, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("gateway key %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("gateway key %s: %w", path, err)
	}
	b = make([]byte, keySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("gateway key: %w", err)
	}
	if err := fileutil.WriteAtomic(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("gateway key: %w", err)
	}
	return b, nil
}

// payload is the signed part: version, pod, port, epoch and expiry, each
// length-prefixed or fixed-size so no two claims encode alike.
func (c claims) payload() []byte {
	var b []byte
	for _, s := range []string{tokenVersion, c.Pod, c.Port} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, c.Epoch)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Expires.Unix()))
	return b
}

func (s signer) mac(p []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(p)
	return m.Sum(nil)
}

// sign returns the token for c: "v1.<payload>.<mac>", base64url without
// padding (safe in a URL, a cookie value and a header).
func (s signer) sign(c claims) string {
	p := c.payload()
	enc := base64.RawURLEncoding
	return tokenVersion + "." + enc.EncodeToString(p) + "." + enc.EncodeToString(s.mac(p))
}

// verify checks tok's signature and expiry at now and returns its claims.
// Epoch (revocation) and host are the caller's to check.
func (s signer) verify(tok string, now time.Time) (claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != tokenVersion {
		return claims{}, errMalformed
	}
	enc := base64.RawURLEncoding
	p, err1 := enc.DecodeString(parts[1])
	sig, err2 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil {
		return claims{}, errMalformed
	}
	if !hmac.Equal(sig, s.mac(p)) {
		return claims{}, errSignature
	}
	c, err := parsePayload(p)
	if err != nil {
		return claims{}, err
	}
	if !now.Before(c.Expires) {
		return claims{}, errExpired
	}
	return c, nil
}

// parsePayload is payload's inverse (only ever run on signed bytes).
func parsePayload(b []byte) (claims, error) {
	var strs [3]string
	for i := range strs {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return claims{}, errMalformed
		}
		strs[i], b = string(b[k:k+int(n)]), b[k+int(n):]
	}
	if strs[0] != tokenVersion || len(b) != 16 {
		return claims{}, errMalformed
	}
	return claims{
		Pod:     strs[1],
		Port:    strs[2],
		Epoch:   binary.BigEndian.Uint64(b),
		Expires: time.Unix(int64(binary.BigEndian.Uint64(b[8:])), 0),
	}, nil
}
