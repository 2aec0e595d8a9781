package demo

// buildScriptText is scripts/build.sh. The artifact it writes is a
// launcher with the version inside it, so one sha256 always runs one
// version: staging and production deploy the same bytes.
const buildScriptText = `#!/bin/sh
# Builds a service's artifact, dist/SERVICE (dist/api, dist/web): a
# launcher that runs one version of the demo service from the ripcord
# binary. The version is part of the file, so the artifact's sha256 names
# exactly one release.
#
# The exec pipeline sets RIPCORD_SERVICE, RIPCORD_VERSION and RIPCORD_RUN_ID.
set -eu

version="${RIPCORD_VERSION:?the pipeline sets RIPCORD_VERSION}"
case "$version" in
  -*|*[!A-Za-z0-9._+-]*)
    echo "build: version $version may only hold letters, digits and . _ + -" >&2
    exit 1 ;;
esac
service="${RIPCORD_SERVICE:-api}"
case "$service" in
  api|web) ;;
  *) echo "build: the demo builds api and web, not $service" >&2; exit 1 ;;
esac

echo "building $service $version (run ${RIPCORD_RUN_ID:-by hand})"
mkdir -p dist
tmp="dist/.$service.$$"
# The quoted delimiter writes these lines as they are, quotes included.
cat > "$tmp" <<'LAUNCHER'
#!/bin/sh
# A shop service, built by scripts/build.sh.
exec {{.Self}} demo service \
LAUNCHER
printf '  --name %s --version %s "$@"\n' "$service" "$version" >> "$tmp"
chmod 755 "$tmp"
mv "$tmp" "dist/$service"
echo "wrote dist/$service ($(wc -c < "dist/$service") bytes)"
sha256sum "dist/$service"
# A real build takes a moment; this keeps the stage visible in the console.
sleep 1
`

// configText is ripcord.yaml, written for someone opening it for the
// first time.
const configText = `# ripcord.yaml of the Ripcord demo: project "shop" with two services, "api"
# and the storefront "web", running on this machine. Nothing is simulated:
# the pipelines run shell commands, each release is a real process, errors
# arrive from the Sentry SDK inside the services, and backups are files a
# job writes.
#
# Written by ` + "`ripcord demo`" + ` at {{.Generated}}. The ports were free then.
# Check the file with:   ripcord validate -c ripcord.yaml
# Paths that do not start with / are relative to this file.

project: shop

services:
  - name: api
    # Schema migrations, read at the commit each release is built from and
    # classed expand (the release before keeps working) or contract. The
    # workspace is a git repository; the pipeline records each release's
    # commit and branch. (The demo's own SQLite database does not apply
    # these PostgreSQL migrations.)
    migrations:
      dir: db/migrations
    # The pipeline builds and checks each release. The exec provider runs
    # every stage as a shell command in this directory, in order; a failed
    # stage stops the run. Each stage sees RIPCORD_SERVICE, RIPCORD_VERSION
    # and RIPCORD_RUN_ID.
    pipeline:
      provider: exec
      stages:
        # build writes dist/api. "artifact:" records the file's sha256:
        # that digest is the release, and exactly that file is deployed to
        # staging and later to production.
        - name: build
          run: sh scripts/build.sh
          artifact: dist/api
        # test starts the built service on a spare port and checks its
        # answers.
        - name: test
          run: |
            ./dist/api --check
            sleep 1
        - name: lint
          run: |
            for f in scripts/build.sh dist/api; do sh -n "$f" && echo "sh -n $f: ok"; done
            sleep 1
        - name: security-scan
          run: |
            echo "scanning dist/ for world-writable files and embedded credentials"
            if [ -n "$(find dist -type f -perm -o+w)" ]; then echo "world-writable file in dist/" >&2; exit 1; fi
            if grep -Eq 'SENTRY_DSN|_KEY=' dist/api; then echo "dist/api embeds a credential" >&2; exit 1; fi
            echo "$(find dist -type f | wc -l) file(s) scanned, 0 findings"
            sleep 1
  # The storefront: a second service, built, promoted and rolled back on
  # its own (press 1 and 2 in the console to switch between them).
  - name: web
    pipeline:
      provider: exec
      stages:
        - name: build
          run: sh scripts/build.sh
          artifact: dist/web
        - name: test
          run: ./dist/web --check

# Environments, in promotion order. Their policy (gates, rollout, rollback)
# applies to both services; each service runs in each environment on its
# own target with its own error ingest, under services.
environments:
  - name: staging
    # Every green build is deployed here without asking.
    auto: true
    # Backups written here belong to the environment: both services use
    # the orders database, so its backups gate both.
    backups:
{{- template "orders" (envArgs .Root "api" .Staging)}}
    services:
      - name: api
{{- template "target" (envArgs .Root "api" .Staging)}}
      - name: web
{{- template "target" (envArgs .Root "web" .WebStaging)}}

  - name: production
    # Production only takes what staging runs (the artifact digest must
    # match).
    from: staging
    services:
      - name: api
{{- template "target" (envArgs .Root "api" .Production)}}
      - name: web
{{- template "target" (envArgs .Root "web" .WebProduction)}}
    # Promote is enabled when all of these pass: a green pipeline, no error
    # spike in staging, fresh backups, migrations safe to ship, built from
    # an allowed branch (main by default), and nobody else holding the lock.
    gates: [pipeline, errors, backups, migrations, branch, lock]
    # A canary: 25% of requests go to the new release while its error rate
    # is compared with the old one's for 10 minutes, then everything.
    rollout:
      - weight: 25
      - { analysis: errors, for: 10m }
      - weight: 100
    rollback:
      # When the analysis finds a spike, Ripcord tells you and waits. To
      # have it roll back by itself, write:  auto: on-analysis-failure
      auto: "off"
    # This is production: the console names it in its own colour, and
    # dangerous actions default to typing the service name; the demo keeps
    # them to one key.
    production: true
    confirm: y
    # The errors gate and the analysis pass on HEALTHY: the candidate's
    # error rate bounded below 1.5x the old one's with 99% confidence. That
    # takes more errors than the demo's minute in staging produces, so an
    # inconclusive verdict is let through here (the default, wait, would
    # hold the promotion until staging's verdict is HEALTHY).
    spike:
      on_inconclusive: pass
    backups:
{{- template "orders" (envArgs .Root "api" .Production)}}
      - name: uploads
        provider: dir
        path: {{q .Uploads}}
        every: 24h
        # Warn once the newest backup is 1.2 x 24h old. The only one is 30h
        # old: the backups gate warns about it but does not block.
        warn: 1.2
        criticality: customer uploads

# Ripcord's own state: runs, releases, audit log.
store:
  driver: sqlite
  path: .ripcord/state.db
`

// targetText is one service's target and error source in one
// environment.
const targetText = `{{define "target"}}
        # The local target runs each release as a process under root, behind
        # a small proxy on the public port: browse {{.Env.URL}}
        # Each release listens on a private port of its own, {{"{{"}}.Port{{"}}"}}
        # below; during a canary the proxy splits requests between old and new.
        target:
          provider: local
          root: .ripcord/envs/{{.Dir}}
          port: {{.Env.Port}}
          # The build's artifact is installed in each release directory as
          # ./artifact (the default artifact_name).
          run: "./artifact --port {{"{{"}}.Port{{"}}"}}"
          health: "http://127.0.0.1:{{"{{"}}.Port{{"}}"}}/healthz"
          # Added to each release's environment. SENTRY_DSN points the Sentry
          # SDK at the ingest below. The key is written as ${NAME:-default}:
          # a real key comes from your environment, never from this file.
          env:
            SENTRY_DSN: "http://${ {{- .KeyVar}}:-{{.Key}}}@127.0.0.1:{{.Env.IngestPort}}/1"
            SENTRY_ENVIRONMENT: {{.Env.Name}}
            DEMO_DATA: {{q .Env.DataDir}}
        # sentry-ingest is a Sentry-compatible endpoint inside Ripcord: the
        # service's SDK sends its errors here and Ripcord counts them per
        # release, which is what the errors gate and analysis compare.
        errors:
          provider: sentry-ingest
          listen: "127.0.0.1:{{.Env.IngestPort}}"
          keys: { "1": "${ {{- .KeyVar}}:-{{.Key}}}" }
{{- end}}`

// ordersText is one environment's orders backup set.
const ordersText = `{{define "orders"}}
      # The orders database, copied every minute by the demo's backup job.
      # The dir provider takes the newest file matching path as the newest
      # backup (and distrusts one much smaller than the one before).
      - name: orders
        provider: dir
        path: {{q (printf "%s/*.sqlite" (rel .Root .Env.BackupDir))}}
        poll: 10s
        every: {{dur .Env.BackupEvery}}
        criticality: every order placed
{{- end}}`
