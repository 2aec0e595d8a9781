-- migrate:up
truncate user_sessions;
-- migrate:down
