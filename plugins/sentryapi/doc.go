// Package sentryapi reads error counts from Sentry's Web API (sentry.io
// or self-hosted) for the `sentry` error-source provider.
//
// Counts come from GET /api/0/organizations/{org}/events-stats/ with
// field=release and topEvents (one series per release, 1-minute buckets).
// Issues come from GET /api/0/organizations/{org}/issues/ with
// query=firstRelease:V. Deploy markers are created with
// POST /api/0/organizations/{org}/releases/{version}/deploys/.
//
// The client sends the token as "Authorization: Bearer"; it never
// appears in errors or logs. It follows Link cursors while
// results="true", stops sending when X-Sentry-Rate-Limit-Remaining is 0
// until X-Sentry-Rate-Limit-Reset, and after a 429 waits Retry-After
// before one retry. Source polls at most once a minute by default.
//
// When events-stats is refused (it is an experimental endpoint, missing
// on some plans and on Sentry-compatible servers), Source steps down to
// the issues list; when that fails too it reports windows whose
// Unavailable says why, so the screen shows "counts unavailable" rather
// than zeros.
package sentryapi
