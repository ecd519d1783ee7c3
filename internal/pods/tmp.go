package pods

import "os"

// tempFile is an unlinked temporary file (runsc's stdio must be a file).
func tempFile() (*os.File, error) {
	f, err := os.CreateTemp("", "pinacle-exec-")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name()) // at worst a stray empty file in the temp dir
	return f, nil
}
