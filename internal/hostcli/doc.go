// Package hostcli is the logic of the macOS host CLI (cmd/pinacle): it drives
// Lima's limactl for the VM and forwards node commands through
// `limactl shell VM sudo pinacle-node ... -o json`, decoding and rendering
// their results and errors.
package hostcli
