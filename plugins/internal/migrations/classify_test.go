package migrations

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/core"
)

// change renders a SchemaChange as the tables below write it:
// "line kind: action table.column".
func change(c core.SchemaChange) string {
	return fmt.Sprintf("%d %s: %s", c.Line, c.Kind, describe(c))
}

func readDir(t testing.TB, dir string) []File {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var fs []File
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, File{Path: "db/migrations/" + e.Name(), Data: b})
	}
	return fs
}

// TestCorpus reads a directory per layout, written the way projects using
// each tool write their migrations, and checks each migration's place in
// the order, its class and what each statement was found to do.
func TestCorpus(t *testing.T) {
	type mig struct {
		id      string
		kind    core.MigrationKind
		reason  string // contained in Reason
		changes []string
	}
	const E, C = core.MigrationExpand, core.MigrationContract
	corpus := map[string][]mig{
		LayoutGolangMigrate: {
			{"000001_create_users", E, "only adds", []string{"1 expand: create table users"}},
			{"000002_add_display_name", E, "only adds", []string{"2 expand: add column users.display_name", "3 expand: backfill users.display_name"}},
			{"000003_index_users_created_at", E, "", []string{"1 expand: create index users"}},
			{"000010_drop_users_name", C, "drop column users.name (line 1)", []string{"1 contract: drop column users.name"}},
		},
		LayoutGoose: {
			{"20240105093000_create_orders", E, "", []string{"3 expand: create table orders", "10 expand: create index orders"}},
			{"20240212141500_order_status_enum", E, "", []string{"2 expand: create enum", "3 expand: add enum value order_status.refunded"}},
			{"20240301080000_orders_status_type", C, "change the type of column orders.status", []string{"2 contract: change the type of column orders.status"}},
			{"20240315120000_touch_updated_at", E, "", []string{"3 expand: create function", "10 expand: add column orders.updated_at", "11 expand: create trigger"}},
		},
		LayoutFlyway: {
			{"V1__init", E, "", []string{"1 expand: create schema", "2 expand: create table billing.invoices"}},
			{"V1.1__invoice_due_date", E, "", []string{"1 expand: add column billing.invoices.due_on", "2 expand: comment"}},
			{"V2__due_date_required", C, "update rows billing.invoices.due_on", []string{"1 contract: update rows billing.invoices.due_on", "2 contract: set NOT NULL on column billing.invoices.due_on"}},
			{"V10__purge_test_invoices", E, "annotated expand: only rows created by the load test, which no release reads (the parser said contract)", []string{"2 expand: delete rows billing.invoices"}},
			{"R__invoice_totals_view", E, "", []string{"1 expand: create view billing.invoice_totals"}},
		},
		LayoutDbmate: {
			{"20240401101010_create_sessions", E, "", []string{"2 expand: create table sessions", "7 expand: create index sessions"}},
			{"20240402090000_sessions_last_seen", E, "", []string{"2 expand: add column sessions.last_seen_at", "2 expand: add column sessions.user_agent", "3 expand: drop NOT NULL on column sessions.user_agent"}},
			{"20240410000000_rename_sessions", C, "rename table sessions", []string{"2 contract: rename table sessions", "3 contract: rename column user_sessions.token to session_token"}},
			{"20240420000000_truncate_sessions", C, "truncate user_sessions", []string{"2 contract: truncate user_sessions"}},
		},
		LayoutPlain: {
			{"001_products", E, "", []string{"1 expand: create table products", "2 expand: insert rows products"}},
			{"002_product_flags", C, "add NOT NULL column without a default products.weight_grams", []string{"1 expand: add column products.archived", "2 contract: add NOT NULL column without a default products.weight_grams"}},
			{"003_products_unique_title", C, "create unique index products", []string{"1 contract: create unique index products", "2 contract: add check constraint (existing writes may break it) products", "3 expand: validate constraint price_positive products"}},
			{"004_typo", C, `line 2 cannot be parsed as PostgreSQL (syntax error at or near "text"): counted as contract`, []string{"1 expand: add column products.color", "2 contract: unparseable statement", "3 expand: create index products"}},
			{"010_cleanup", C, "drop view legacy_product_view", []string{"1 contract: drop view legacy_product_view", "2 contract: drop table legacy_products", "2 contract: drop table legacy_prices", "3 contract: drop constraint price_positive (the previous release may rely on it) products"}},
		},
	}
	statements := 0
	for layout, want := range corpus {
		t.Run(layout, func(t *testing.T) {
			got := Read(readDir(t, filepath.Join("testdata", layout)))
			var ids []string
			for _, m := range got {
				ids = append(ids, m.ID)
			}
			var wantIDs []string
			for _, w := range want {
				wantIDs = append(wantIDs, w.id)
			}
			if !slices.Equal(ids, wantIDs) {
				t.Fatalf("migrations in order = %v\nwant %v", ids, wantIDs)
			}
			for i, w := range want {
				m := got[i]
				var changes []string
				for _, c := range m.Changes {
					changes = append(changes, change(c))
				}
				if m.Kind != w.kind || !strings.Contains(m.Reason, w.reason) || !slices.Equal(changes, w.changes) {
					t.Errorf("%s = %s (%s)\n  %s\nwant %s (…%s…)\n  %s", m.ID, m.Kind, m.Reason, strings.Join(changes, "\n  "), w.kind, w.reason, strings.Join(w.changes, "\n  "))
				}
				if m.Layout != layout || m.File != "db/migrations/"+filepath.Base(m.File) {
					t.Errorf("%s: layout %q file %q", m.ID, m.Layout, m.File)
				}
				statements += len(w.changes)
			}
		})
	}
	if statements < 40 {
		t.Errorf("the corpus checks %d statement effects; it should check at least 40", statements)
	}
}

// TestStatements classes single statements seen in real migrations.
func TestStatements(t *testing.T) {
	const E, C = core.MigrationExpand, core.MigrationContract
	cases := []struct {
		sql    string
		kind   core.MigrationKind
		change string
	}{
		{"ALTER TABLE users ADD COLUMN last_login timestamptz", E, "add column users.last_login"},
		{"ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true", E, "add column users.active"},
		{"ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL", C, "add NOT NULL column without a default users.tenant_id"},
		{"ALTER TABLE users ADD COLUMN seq bigserial", E, "add column users.seq"},
		{"ALTER TABLE users ADD COLUMN n int GENERATED BY DEFAULT AS IDENTITY", E, "add column users.n"},
		{"ALTER TABLE users ADD COLUMN email_lower text GENERATED ALWAYS AS (lower(email)) STORED", E, "add column users.email_lower"},
		{"ALTER TABLE users ADD COLUMN org_id bigint REFERENCES orgs (id)", E, "add column users.org_id"},
		{"ALTER TABLE users ALTER COLUMN email DROP NOT NULL", E, "drop NOT NULL on column users.email"},
		{"ALTER TABLE users ALTER COLUMN email SET NOT NULL", C, "set NOT NULL on column users.email"},
		{"ALTER TABLE users ALTER COLUMN plan SET DEFAULT 'free'", E, "set the default of column users.plan"},
		{"ALTER TABLE users ALTER COLUMN plan DROP DEFAULT", C, "drop the default of column users.plan"},
		{"ALTER TABLE users ALTER COLUMN name TYPE varchar(200)", C, "change the type of column users.name"},
		{"ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id)", C, "add foreign constraint (existing writes may break it) orders"},
		{"ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX orders_id_idx", C, "add primary constraint (existing writes may break it) orders"},
		{"ALTER TABLE orders SET (fillfactor = 80)", E, "set storage or options orders"},
		{"ALTER TABLE public.orders RENAME COLUMN total TO total_cents", C, "rename column orders.total to total_cents"},
		{"ALTER INDEX orders_user_idx RENAME TO orders_user_id_idx", E, "rename index orders_user_idx"},
		{"ALTER TABLE orders SET SCHEMA archive", C, "move table to schema archive orders"},
		{"ALTER TYPE order_status RENAME VALUE 'shipped' TO 'sent'", C, "rename enum value order_status.shipped to sent"},
		{"DROP INDEX CONCURRENTLY orders_legacy_idx", C, "drop index orders_legacy_idx"},
		{"DROP TYPE IF EXISTS legacy_state", C, "drop type legacy_state"},
		{"DROP SEQUENCE legacy_seq", C, "drop sequence legacy_seq"},
		{"DROP FUNCTION IF EXISTS legacy_total(bigint)", C, "drop function legacy_total"},
		{"CREATE MATERIALIZED VIEW daily_sales AS SELECT date_trunc('day', created_at) AS day, count(*) FROM orders GROUP BY 1", E, "create materialized view daily_sales"},
		{"REFRESH MATERIALIZED VIEW CONCURRENTLY daily_sales", E, "refresh materialized view"},
		{"CREATE EXTENSION IF NOT EXISTS pg_trgm", E, "create extension"},
		{"CREATE SEQUENCE invoice_numbers START 1000", E, "create sequence"},
		{"GRANT SELECT ON orders TO reporting", E, "grant"},
		{"REVOKE UPDATE ON orders FROM app", C, "revoke"},
		{"DELETE FROM sessions WHERE expires_at < now()", C, "delete rows sessions"},
		{"UPDATE users SET plan = 'free' WHERE plan IS NULL", C, "update rows users.plan"},
		{"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN CREATE TYPE mood AS ENUM ('ok'); END IF; END $$", C, "DO block (what it runs cannot be read)"},
		{"SET lock_timeout = '5s'", E, ""},
		{"SELECT pg_advisory_lock(42)", E, ""},
	}
	for _, c := range cases {
		m := Classify(c.sql, 1)
		var got []string
		for _, ch := range m.Changes {
			got = append(got, describe(ch))
		}
		want := []string{}
		if c.change != "" {
			want = []string{c.change}
		}
		if m.Kind != c.kind || !slices.Equal(append([]string{}, got...), want) {
			t.Errorf("%s\n  = %s %q, want %s %q", c.sql, m.Kind, got, c.kind, want)
		}
	}
}

func TestAnnotation(t *testing.T) {
	m := Classify("-- ripcord: contract the new check rejects what v1 writes\nALTER TABLE t ADD COLUMN c int;\n", 1)
	if m.Kind != core.MigrationContract || !strings.Contains(m.Reason, "annotated contract: the new check rejects what v1 writes (the parser said expand)") {
		t.Fatalf("annotated contract = %s %q", m.Kind, m.Reason)
	}
	if got := m.Tables(core.MigrationContract); !slices.Equal(got, []string{"t"}) {
		t.Fatalf("an annotated contract names the tables it touches for the expand check: %v", got)
	}
	// Without a reason the annotation does not count, and says so.
	m = Classify("-- ripcord: expand\nDROP TABLE t;\n", 1)
	if m.Kind != core.MigrationContract || !strings.Contains(m.Reason, "was ignored: it must say why") {
		t.Fatalf("annotation without a reason = %s %q", m.Kind, m.Reason)
	}
}
