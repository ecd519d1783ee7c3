// Package oci builds OCI runtime-spec bundles for pods and drives runsc
// through a typed, deadline-bound Go API.
package oci
