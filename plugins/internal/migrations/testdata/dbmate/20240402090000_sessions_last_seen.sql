-- migrate:up
alter table sessions add column last_seen_at timestamptz, add column user_agent text default '';
alter table sessions alter column user_agent drop not null;

-- migrate:down
alter table sessions drop column last_seen_at, drop column user_agent;
