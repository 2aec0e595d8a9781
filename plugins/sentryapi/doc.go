// Package sentryapi reads error counts from Sentry's Web API (sentry.io
// or self-hosted) for the built-in `sentry` error-source provider.
//
// Counts come from the documented Discover query
// GET /api/0/organizations/{org}/events/ (table format) with the fields
// release, timestamp and count() over error events: per release, per
// second, folded into the verdict's 10 s buckets. The first poll asks for
// the last hour (the history the verdict learns the usual rate from),
// each later one for the time since the last plus two minutes, since
// Sentry stores events a little after they happen. Issues come from
// GET /api/0/organizations/{org}/issues/ with query=firstRelease:V.
// Deploy markers are created with
// POST /api/0/organizations/{org}/releases/{version}/deploys/.
//
// The client sends the token as "Authorization: Bearer"; it never
// appears in errors or logs. It follows Link cursors while
// results="true", stops sending when X-Sentry-Rate-Limit-Remaining is 0
// until X-Sentry-Rate-Limit-Reset, and after a 429 waits Retry-After
// before one retry. Source polls once a minute by default and, after a
// poll that failed, waits twice as long each time, up to ten minutes.
//
// When the Discover query is refused (plans and Sentry-compatible servers
// without it), Source steps down to the issues list; when that fails too
// it reports windows whose Unavailable says why, so the screen shows
// "counts unavailable" rather than zeros. A query with more rows than
// its page limit is refused too: a short count is never reported.
package sentryapi
