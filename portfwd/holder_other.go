//go:build !linux

package portfwd

func holderOf(uint16) string { return "another process" }
