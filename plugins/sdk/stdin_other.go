//go:build !unix

package sdk

import "os"

// detachStdin stops the SDK's own code from reading the host's stdin.
func detachStdin() {
	if null, err := os.Open(os.DevNull); err == nil {
		os.Stdin = null
	}
}
