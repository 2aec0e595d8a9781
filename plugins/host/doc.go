// Package host starts Ripcord's provider plugins, supervises them and
// adapts them to core's provider interfaces, so core never sees gRPC.
//
// Choices, each for a failure seen with go-plugin v1.8.0:
//   - gRPC only, AutoMTLS, and the SDK's fixed magic cookie with
//     VersionedPlugins{1: …}; every service of ripcord.plugin.v1 is served
//     on one connection (one go-plugin set entry, "provider").
//   - External binaries (ripcord-provider-NAME in ./.ripcord/plugins,
//     $XDG_DATA_HOME/ripcord/plugins or an explicit path) must be pinned in
//     ripcord.lock (JSON, see Lock). The host hashes the binary itself
//     before every launch, so a refusal names the plugin and both digests,
//     and go-plugin's SecureConfig checks again. Built-ins re-execute the
//     running binary (`<self> plugin serve NAME`) and need no entry:
//     hashing the large main binary at every start would cost most of the
//     start budget and it is the program already running.
//   - SkipHostEnv with an explicit environment (EnvAllowlist plus the
//     plugin's own entries): otherwise every plugin inherits the console's
//     cloud credentials. Secrets travel only through Configure.
//   - Setsid + Pdeathsig(SIGKILL) on Linux (the SDK adds a parent
//     watchdog), Managed clients and Cleanup for main: a killed console
//     leaves no plugin behind.
//   - One private 0700 socket directory per host (PLUGIN_UNIX_SOCKET_DIR),
//     emptied at start; a crashed plugin's socket is removed at restart.
//   - Logger, SyncStdout and SyncStderr all feed Options.Log; nothing is
//     written to the terminal (go-plugin's default logger would draw Trace
//     lines over the screen).
//   - A go-plugin Client is single-use: a crashed plugin (noticed through
//     the context go-plugin cancels when the process exits) is restarted
//     with a new Client and exec.Cmd under exponential backoff, reported
//     degraded meanwhile, re-sent its last settings, and in-flight deploy
//     operations re-attach with WatchOperation by operation id and
//     external ref.
//   - Adapters renumber operation events so core sees one strictly
//     increasing seq across re-attaches, and always one Done, last; an
//     operation that completes without success also returns
//     *OpFailedError. Idempotent unary reads are retried once on a
//     restarted process; Trigger and MarkDeploy are not.
package host
