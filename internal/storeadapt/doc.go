// Package storeadapt keeps portfwd's port allocations and netns's subnet
// reservations in the node's bbolt state store, and imports the JSON files
// the standalone stores wrote before.
package storeadapt
