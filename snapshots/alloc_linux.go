package snapshots

import (
	"io/fs"
	"syscall"
)

// allocated is the space fi's file takes on disk (sparse files count
// what they hold, not their length).
func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
