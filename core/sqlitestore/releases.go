package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ripcordhq/ripcord/core"
)

// PutRelease records a release, or updates the one with the same service
// and version. A hold is never cleared here: a release recorded again
// (the pipeline re-reporting it after a restart) stays held until a person
// calls SetHold.
func (s *Store) PutRelease(ctx context.Context, r core.Release) error {
	if r.Service == "" || r.Version == "" {
		return fmt.Errorf("put release: service and version are required")
	}
	var migs any = r.Migrations
	switch {
	case r.MigrationsUnknown != "":
		// The column holds the list, or why there is none; an object keeps
		// the schema as it is and stays readable by older code as an error.
		migs = unknownMigrations{Unknown: r.MigrationsUnknown}
	case r.Migrations == nil:
		migs = []core.Migration{}
	}
	mj, err := json.Marshal(migs)
	if err != nil {
		return fmt.Errorf("put release %s %s: encode migrations: %w", r.Service, r.Version, err)
	}
	return s.write(ctx, "put release", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
INSERT INTO releases (service, version, commit_sha, branch, artifact_digest, built_at, migrations, held, held_reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (service, version) DO UPDATE SET
	commit_sha      = excluded.commit_sha,
	branch          = excluded.branch,
	artifact_digest = excluded.artifact_digest,
	built_at        = excluded.built_at,
	migrations      = excluded.migrations,
	held            = releases.held OR excluded.held,
	held_reason     = CASE WHEN excluded.held THEN excluded.held_reason ELSE releases.held_reason END`,
			r.Service, r.Version, r.Commit, r.Branch, r.ArtifactDigest, micros(r.BuiltAt), string(mj), r.Held, r.HeldReason)
		if err != nil {
			return fmt.Errorf("put release %s %s: %w", r.Service, r.Version, err)
		}
		return nil
	})
}

// unknownMigrations is what the migrations column holds when the
// pipeline could not read a release's migrations.
type unknownMigrations struct {
	Unknown string `json:"unknown"`
}

const releaseColumns = `service, version, commit_sha, branch, artifact_digest, built_at, migrations, held, held_reason`

func scanRelease(sc interface{ Scan(...any) error }) (core.Release, error) {
	var (
		r       core.Release
		builtAt sql.NullInt64
		migs    string
	)
	if err := sc.Scan(&r.Service, &r.Version, &r.Commit, &r.Branch, &r.ArtifactDigest, &builtAt, &migs, &r.Held, &r.HeldReason); err != nil {
		return r, err
	}
	r.BuiltAt = fromMicros(builtAt)
	if strings.HasPrefix(migs, "{") {
		var u unknownMigrations
		if err := json.Unmarshal([]byte(migs), &u); err != nil {
			return r, fmt.Errorf("decode migrations: %w", err)
		}
		r.MigrationsUnknown = u.Unknown
	} else if err := json.Unmarshal([]byte(migs), &r.Migrations); err != nil {
		return r, fmt.Errorf("decode migrations: %w", err)
	}
	if len(r.Migrations) == 0 {
		r.Migrations = nil
	}
	return r, nil
}

// Release returns one release, or an error wrapping core.ErrNotFound.
func (s *Store) Release(ctx context.Context, service, version string) (core.Release, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+releaseColumns+` FROM releases WHERE service = ? AND version = ?`, service, version)
	r, err := scanRelease(row)
	if errors.Is(err, sql.ErrNoRows) {
		return core.Release{}, fmt.Errorf("release %s %s: %w", service, version, core.ErrNotFound)
	}
	if err != nil {
		return core.Release{}, fmt.Errorf("read release %s %s: %w", service, version, err)
	}
	return r, nil
}

// Releases lists a service's releases newest first: by build time, then
// by when they were recorded. Releases with no build time come last. An
// empty service lists every service's; limit <= 0 means no limit.
func (s *Store) Releases(ctx context.Context, service string, limit int) ([]core.Release, error) {
	rows, err := s.r.QueryContext(ctx, `
SELECT `+releaseColumns+` FROM releases
WHERE ? = '' OR service = ?
ORDER BY built_at IS NULL, built_at DESC, id DESC
LIMIT ?`, service, service, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list releases of %q: %w", service, err)
	}
	defer rows.Close()
	var out []core.Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, fmt.Errorf("list releases of %q: %w", service, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list releases of %q: %w", service, err)
	}
	return out, nil
}

// SetHold holds a release (automation may not promote it) or clears the
// hold.
func (s *Store) SetHold(ctx context.Context, service, version string, held bool, reason string) error {
	if !held {
		reason = ""
	}
	return s.write(ctx, "set hold", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE releases SET held = ?, held_reason = ? WHERE service = ? AND version = ?`,
			held, reason, service, version)
		if err != nil {
			return fmt.Errorf("set hold on %s %s: %w", service, version, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("set hold on %s %s: %w", service, version, err)
		} else if n == 0 {
			return fmt.Errorf("set hold on %s %s: %w", service, version, core.ErrNotFound)
		}
		return nil
	})
}

// sqlLimit turns "no limit" (<= 0) into SQLite's LIMIT -1.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

// AddDeployment records a new deployment and returns its ID.
func (s *Store) AddDeployment(ctx context.Context, d core.Deployment) (int64, error) {
	actor, err := json.Marshal(d.Actor)
	if err != nil {
		return 0, fmt.Errorf("add deployment %s %s: encode actor: %w", d.Ref, d.Version, err)
	}
	var id int64
	err = s.write(ctx, "add deployment", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `
INSERT INTO deployments (service, env, version, from_version, state, weight, step, started_at, finished_at, actor, exposed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING id`,
			d.Ref.Service, d.Ref.Env, d.Version, d.From, string(d.State), d.Weight, d.Step,
			micros(d.StartedAt), micros(d.FinishedAt), string(actor), micros(d.ExposedAt)).Scan(&id)
		if err != nil {
			return fmt.Errorf("add deployment %s %s: %w", d.Ref, d.Version, err)
		}
		return nil
	})
	return id, err
}

// UpdateDeployment changes a deployment's state, weight, step, exposure
// and finish time; what was deployed, where and by whom stay as recorded.
func (s *Store) UpdateDeployment(ctx context.Context, d core.Deployment) error {
	return s.write(ctx, "update deployment", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
UPDATE deployments SET state = ?, weight = ?, step = ?, finished_at = ?, exposed_at = ?
WHERE id = ?`, string(d.State), d.Weight, d.Step, micros(d.FinishedAt), micros(d.ExposedAt), d.ID)
		if err != nil {
			return fmt.Errorf("update deployment %d: %w", d.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update deployment %d: %w", d.ID, err)
		} else if n == 0 {
			return fmt.Errorf("update deployment %d: %w", d.ID, core.ErrNotFound)
		}
		return nil
	})
}

// Deployments lists an environment's deployments, newest first.
func (s *Store) Deployments(ctx context.Context, ref core.Ref, limit int) ([]core.Deployment, error) {
	rows, err := s.r.QueryContext(ctx, `
SELECT id, service, env, version, from_version, state, weight, step, started_at, finished_at, actor, exposed_at
FROM deployments WHERE service = ? AND env = ?
ORDER BY id DESC
LIMIT ?`, ref.Service, ref.Env, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list deployments of %s: %w", ref, err)
	}
	defer rows.Close()
	var out []core.Deployment
	for rows.Next() {
		var (
			d                            core.Deployment
			state, actor                 string
			started, finishedAt, exposed sql.NullInt64
		)
		if err := rows.Scan(&d.ID, &d.Ref.Service, &d.Ref.Env, &d.Version, &d.From, &state, &d.Weight, &d.Step,
			&started, &finishedAt, &actor, &exposed); err != nil {
			return nil, fmt.Errorf("list deployments of %s: %w", ref, err)
		}
		d.State = core.DeployState(state)
		d.StartedAt, d.FinishedAt, d.ExposedAt = fromMicros(started), fromMicros(finishedAt), fromMicros(exposed)
		if err := json.Unmarshal([]byte(actor), &d.Actor); err != nil {
			return nil, fmt.Errorf("list deployments of %s: decode actor of %d: %w", ref, d.ID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deployments of %s: %w", ref, err)
	}
	return out, nil
}
