//go:build !linux

package local

// CloseInheritedFiles is a no-op where /proc does not list descriptors.
func CloseInheritedFiles() {}

func keepInheritedFiles() {}
