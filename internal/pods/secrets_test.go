package pods

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/pinacle/pinacle-node/internal/testenv"
	"github.com/pinacle/pinacle-node/podspec"
)

// A secret belongs to the user of the service that names it (the pod's
// user otherwise), mode 0600, so only that user reads it in the sandbox;
// a user the image does not know leaves it readable (0644) rather than
// locking the service out.
func TestSecretOwner(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\ndev:x:1234:1235::/home/dev:/bin/sh\nlab:x:2000:2000::/home/lab:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := &podspec.Pod{User: "dev", Services: []podspec.Service{
		{Name: "jupyter", User: "lab", Env: map[string]string{"JUPYTER_TOKEN_FILE": "/.pinacle/config/jupyter.token"}},
		{Name: "term", Command: []string{"pinacle-node", "webterm", "--token-file", "/.pinacle/config/webterm.token"}},
	}}
	for file, want := range map[string]struct {
		user     string
		uid, gid uint32
		mode     os.FileMode
	}{
		"jupyter.token": {"lab", 2000, 2000, 0o600},
		"webterm.token": {"dev", 1234, 1235, 0o600},
	} {
		if u := secretUser(spec, file); u != want.user {
			t.Errorf("%s: user %q, want %q", file, u, want.user)
		}
		path := filepath.Join(t.TempDir(), file)
		if err := os.WriteFile(path, []byte("s"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := ownSecret(path, root, want.user); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(path)
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != want.uid || st.Gid != want.gid || fi.Mode().Perm() != want.mode {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", file, st.Uid, st.Gid, fi.Mode().Perm(), want.uid, want.gid, want.mode)
		}
	}
	path := filepath.Join(t.TempDir(), "x.token")
	if err := os.WriteFile(path, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ownSecret(path, root, "nobody-here"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("unknown user: mode %v, want 0644", fi.Mode().Perm())
	}
}

// Which services read a secret: the built-in definitions' ways of naming
// one, and nothing else.
func TestReadsSecret(t *testing.T) {
	for _, tc := range []struct {
		s    podspec.Service
		want bool
	}{
		{podspec.Service{Command: []string{"/.pinacle/bin/pinacle-node", "webterm", "--token-file", "/.pinacle/config/webterm.token"}, Port: 3003}, true},
		{podspec.Service{Command: []string{"jupyter", "lab"}, Env: map[string]string{"JUPYTER_TOKEN_FILE": "/.pinacle/config/jupyter.token"}}, true},
		{podspec.Service{Command: []string{"sh", "-c", "HASHED_PASSWORD=$(cat /.pinacle/config/code-server.token) exec code-server"}}, true},
		{podspec.Service{Command: []string{"httpd", "-f", "-p", "8080"}, Env: map[string]string{"X": "/.pinacle/config/services.json"}}, false},
	} {
		if got := readsSecret(tc.s); got != tc.want {
			t.Errorf("readsSecret(%v %v) = %v, want %v", tc.s.Command, tc.s.Env, got, tc.want)
		}
	}
}
