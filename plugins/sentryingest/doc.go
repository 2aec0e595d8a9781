// Package sentryingest is Ripcord's embedded Sentry-compatible ingest: the
// default error source. Any app with a Sentry SDK reports to it by setting
// its DSN to http://KEY@127.0.0.1:8765/PROJECT.
//
// # What it accepts
//
// POST /api/<project>/envelope/ (Sentry envelopes) and the legacy
// POST /api/<project>/store/ (one bare event), with or without the
// trailing slash. The project must be configured in Config.Keys and the
// request must carry its DSN public key, in X-Sentry-Auth
// ("Sentry sentry_key=KEY, ...") or the sentry_key query parameter;
// otherwise 401, and nothing is counted. Bodies may be gzip or deflate
// compressed.
//
// Only `event` items whose level is error or fatal count (a missing level
// is error, as in Sentry). Transactions, sessions, attachments, client
// reports, check-ins and any unknown item types are skipped, not refused.
// A successful envelope is answered 200 {"id":"<event_id>"}.
//
// # Limits
//
//   - Body: 1 MiB compressed and 1 MiB decompressed (MaxEnvelopeSize).
//     Inflation stops at the cap, so a gzip bomb costs 1 MiB: 413.
//   - Event item: 1 MiB (MaxEventSize): 413.
//   - Items per envelope: 1000 (MaxItems). Past it the whole envelope is
//     refused with 413 and nothing in it counts.
//   - Budget per project key: a token bucket of 1000 events/s, burst 2000.
//     Over it: 429 with Retry-After: N and X-Sentry-Rate-Limits:
//     N:error:key, which makes sentry-go drop error events on its own,
//     without sending them, until N seconds have passed.
//   - Malformed input (truncated envelope, wrong item length, bad JSON,
//     invalid UTF-8) is answered 400 {"detail":"<reason>"} and counts
//     nothing from that request.
//
// # Counting
//
// Events are counted by project, environment, release, level and
// fingerprint in 10-second buckets by arrival time (SDK clocks drift, and
// a rollout verdict compares what arrives now). Buckets live 24 h in
// memory; new counts are added to the store through CountStore every couple of
// seconds and on Close, and an environment's last 24 h are loaded before
// it is first used, so a restart keeps the baseline.
//
// The fingerprint is the SDK's `fingerprint` when it sets one other than
// "{{ default }}" (which expands to the default); by default it is the last
// exception's type and top frame (module or file, and function; no line
// number, which would change with every release), else the message
// template. The title is "Type: value" or the message, truncated.
//
// The environment of an event names the Ripcord environment, through
// Config.Envs when the names differ. Ingest implements core.ErrorSource
// for one Config.Service: WatchCounts pushes per-release windows when
// counts change, coalesced to one push per 250 ms.
package sentryingest
