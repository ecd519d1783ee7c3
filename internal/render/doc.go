// Package render prints the node's API objects as the tables and text both
// CLIs show (pinacle-node on Linux, pinacle on macOS), so they never drift.
package render
