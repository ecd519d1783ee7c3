package portfwd

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tcpInfo reads TCP_INFO. RawConn.Control only pins the fd; it does not
// take the read lock a running splice holds.
func tcpInfo(rc syscall.RawConn) (sockInfo, bool) {
	if rc == nil {
		return sockInfo{}, false
	}
	var ti *unix.TCPInfo
	var err error
	if cerr := rc.Control(func(fd uintptr) {
		ti, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); cerr != nil || err != nil {
		return sockInfo{}, false
	}
	return sockInfo{
		acked:     ti.Bytes_acked,
		sinceSent: time.Duration(ti.Last_data_sent) * time.Millisecond,
		sinceRecv: time.Duration(ti.Last_data_recv) * time.Millisecond,
	}, true
}
