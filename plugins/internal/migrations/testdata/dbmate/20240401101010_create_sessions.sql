-- migrate:up
create table sessions (
  token text primary key,
  user_id bigint not null,
  expires_at timestamptz not null
);
create index sessions_expires_at_idx on sessions (expires_at);

-- migrate:down
drop table sessions;
