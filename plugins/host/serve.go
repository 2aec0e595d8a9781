package host

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// ServeBuiltin serves the built-in provider name from registry; cmd calls
// it for the hidden `ripcord plugin serve NAME` command, which is how the
// host starts built-ins (re-executing its own binary). It returns only on
// an unknown name; otherwise it serves until the host stops the process.
func ServeBuiltin(name string, registry map[string]func() sdk.ServeConfig) error {
	mk, ok := registry[name]
	if !ok {
		names := make([]string, 0, len(registry))
		for n := range registry {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("no built-in provider %q (built-ins: %s)", name, strings.Join(names, ", "))
	}
	sdk.Serve(mk())
	return nil
}
