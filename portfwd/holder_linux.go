package portfwd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// holderOf names the process listening on a TCP port, for error messages:
// "pid 123 (nginx)". It is best effort: it scans /proc, so it runs only on
// the error path.
func holderOf(port uint16) string {
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		listeningInodes(file, port, inodes)
	}
	if len(inodes) == 0 {
		return "another process"
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, fdDir := range procs {
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				pidDir := filepath.Dir(fdDir)
				comm, _ := os.ReadFile(filepath.Join(pidDir, "comm"))
				return fmt.Sprintf("pid %s (%s)", filepath.Base(pidDir), strings.TrimSpace(string(comm)))
			}
		}
	}
	return "another process"
}

// listeningInodes adds the socket inodes of LISTEN sockets on port found in
// a /proc/net/tcp-format file.
func listeningInodes(file string, port uint16, into map[string]bool) {
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		fields := strings.Fields(s.Text())
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(fields) < 10 || fields[3] != "0A" { // 0A = TCP_LISTEN
			continue
		}
		i := strings.LastIndexByte(fields[1], ':')
		p, err := strconv.ParseUint(fields[1][i+1:], 16, 16)
		if err != nil || uint16(p) != port {
			continue
		}
		into[fields[9]] = true
	}
}
