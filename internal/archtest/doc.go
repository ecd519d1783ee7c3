// Package archtest holds the tests that keep the node's package map honest: the import rules and the size limits of docs/architecture.md.
package archtest
