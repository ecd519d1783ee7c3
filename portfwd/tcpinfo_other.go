//go:build !linux

package portfwd

import "syscall"

// tcpInfo is Linux only; elsewhere there is no idle timeout and byte counts
// arrive when a connection closes.
func tcpInfo(syscall.RawConn) (sockInfo, bool) { return sockInfo{}, false }
