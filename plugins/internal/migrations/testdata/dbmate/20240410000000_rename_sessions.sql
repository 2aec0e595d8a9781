-- migrate:up
alter table sessions rename to user_sessions;
alter table user_sessions rename column token to session_token;

-- migrate:down
alter table user_sessions rename column session_token to token;
alter table user_sessions rename to sessions;
