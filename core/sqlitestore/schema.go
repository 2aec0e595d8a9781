package sqlitestore

// migrations are applied in order; the database's PRAGMA user_version is
// the number of migrations already applied. Append new migrations at the
// end and never edit one that has shipped: a database written by this
// release must open unchanged in the next.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE releases (
	id              INTEGER PRIMARY KEY,
	service         TEXT    NOT NULL,
	version         TEXT    NOT NULL,
	commit_sha      TEXT    NOT NULL DEFAULT '',
	branch          TEXT    NOT NULL DEFAULT '',
	artifact_digest TEXT    NOT NULL DEFAULT '',
	built_at        INTEGER,              -- unix microseconds, NULL when unknown
	migrations      TEXT    NOT NULL DEFAULT '[]', -- JSON []core.Migration
	held            INTEGER NOT NULL DEFAULT 0,
	held_reason     TEXT    NOT NULL DEFAULT '',
	UNIQUE (service, version)
);
CREATE INDEX releases_by_service ON releases (service, built_at, id);

CREATE TABLE deployments (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	service      TEXT    NOT NULL,
	env          TEXT    NOT NULL,
	version      TEXT    NOT NULL,
	from_version TEXT    NOT NULL DEFAULT '',
	state        TEXT    NOT NULL,
	weight       INTEGER NOT NULL DEFAULT 0,
	step         INTEGER NOT NULL DEFAULT 0,
	started_at   INTEGER,
	finished_at  INTEGER,
	actor        TEXT    NOT NULL DEFAULT '{}' -- JSON core.Actor
);
CREATE INDEX deployments_by_ref ON deployments (service, env, id);

-- The audit log keeps the whole entry as JSON (exactly what was hashed)
-- and copies a few fields into columns for lookups.
CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY,
	at        INTEGER NOT NULL,
	action    TEXT    NOT NULL,
	service   TEXT    NOT NULL DEFAULT '',
	env       TEXT    NOT NULL DEFAULT '',
	actor     TEXT    NOT NULL DEFAULT '',
	prev_hash TEXT    NOT NULL,
	hash      TEXT    NOT NULL UNIQUE,
	entry     TEXT    NOT NULL
);
CREATE INDEX audit_by_ref ON audit (service, env, seq);
CREATE INDEX audit_by_at ON audit (at);

-- Nothing, not even a hand-written statement, edits or removes a line.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TABLE locks (
	service    TEXT    NOT NULL,
	env        TEXT    NOT NULL,
	holder     TEXT    NOT NULL, -- JSON core.Actor
	reason     TEXT    NOT NULL DEFAULT '',
	since      INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	token      TEXT    NOT NULL,
	PRIMARY KEY (service, env)
);

CREATE TABLE operations (
	id           TEXT    PRIMARY KEY,
	service      TEXT    NOT NULL,
	env          TEXT    NOT NULL,
	kind         TEXT    NOT NULL,
	from_version TEXT    NOT NULL DEFAULT '',
	to_version   TEXT    NOT NULL DEFAULT '',
	actor        TEXT    NOT NULL DEFAULT '{}', -- JSON core.Actor
	state        TEXT    NOT NULL,
	external_ref TEXT    NOT NULL DEFAULT '',
	message      TEXT    NOT NULL DEFAULT '',
	started_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
CREATE INDEX operations_by_state ON operations (state, started_at);

CREATE TABLE error_counts (
	project     TEXT    NOT NULL,
	service     TEXT    NOT NULL,
	env         TEXT    NOT NULL,
	release     TEXT    NOT NULL,
	level       TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	bucket      INTEGER NOT NULL,
	title       TEXT    NOT NULL DEFAULT '',
	count       INTEGER NOT NULL,
	PRIMARY KEY (project, service, env, release, level, fingerprint, bucket)
);
CREATE INDEX error_counts_by_ref ON error_counts (service, env, bucket);
CREATE INDEX error_counts_by_bucket ON error_counts (bucket);
`,
	// 2: consoles watching the project.
	`
CREATE TABLE watchers (
	id      TEXT    PRIMARY KEY,
	actor   TEXT    NOT NULL, -- JSON core.Actor
	since   INTEGER NOT NULL,
	seen_at INTEGER NOT NULL
);
CREATE INDEX watchers_by_seen ON watchers (seen_at);
`,
	// 3: facts a console shares with the others on the store.
	`
CREATE TABLE shared (
	key   TEXT    PRIMARY KEY,
	event TEXT    NOT NULL, -- JSON core.Event
	at    INTEGER NOT NULL
);
CREATE INDEX shared_by_at ON shared (at);
`,
	// 4: locks of two kinds per environment (an operation's and a
	// person's), owned by a process; expires_at 0 holds until released.
	`
ALTER TABLE locks RENAME TO locks_v3;
CREATE TABLE locks (
	service    TEXT    NOT NULL,
	env        TEXT    NOT NULL,
	kind       TEXT    NOT NULL, -- core.LockKind
	holder     TEXT    NOT NULL, -- JSON core.Actor
	reason     TEXT    NOT NULL DEFAULT '',
	since      INTEGER NOT NULL,
	expires_at INTEGER NOT NULL, -- 0: until released
	token      TEXT    NOT NULL UNIQUE,
	owner      TEXT    NOT NULL DEFAULT '{}', -- JSON procid.ID
	PRIMARY KEY (service, env, kind)
);
INSERT INTO locks (service, env, kind, holder, reason, since, expires_at, token)
	SELECT service, env, 'operation', holder, reason, since, expires_at, token FROM locks_v3;
DROP TABLE locks_v3;
`,
	// 5: when a deployment's candidate began taking traffic.
	`
ALTER TABLE deployments ADD COLUMN exposed_at INTEGER; -- unix microseconds, NULL until exposed
`,
}
