// Package oci builds OCI runtime-spec bundles for pods (spec.go, bundle.go, user.go) and drives runsc through a typed, deadline-bound Go API (runsc.go, options.go, create.go, state.go, exec.go, checkpoint.go).
package oci
