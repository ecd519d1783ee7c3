// Package sdnotify tells systemd about the service's state (Type=notify)
// through $NOTIFY_SOCKET, without linking libsystemd.
package sdnotify

import (
	"net"
	"os"
)

// Notify sends state (e.g. "READY=1") to systemd. Without NOTIFY_SOCKET
// (not under systemd) it does nothing and reports false.
func Notify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract namespace
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}
