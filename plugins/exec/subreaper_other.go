//go:build !linux

package exec

// becomeSubreaper does nothing where there is no child subreaper (macOS):
// a step's orphans go to init, and endGroup still ends them through their
// process group.
func becomeSubreaper() error { return nil }
