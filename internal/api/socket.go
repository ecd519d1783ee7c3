package api

const (
	// DefaultSocketPath is where the daemon listens and the CLI dials.
	DefaultSocketPath = "/run/pinacle/node.sock"
	// DefaultSocketGroup owns the socket when it exists, so its members
	// can use the CLI without root.
	DefaultSocketGroup = "pinacle"
)
