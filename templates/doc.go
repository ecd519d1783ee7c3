// Package templates holds the pod templates and service definitions the
// node ships with (and users' own), resolves a user's pod spec against
// them into a complete, validated podspec.Pod, and detects a checkout's
// project type.
package templates
