-- Ending a session is announced on rabt_sessions (delivered at commit), whoever
-- ends it: a logout, a revocation by id, a password change or reset, a
-- suspension, an erasure, or SQL typed by an operator. Each server holds the
-- answers of recent session checks in memory for a second (auth/sessions.rs)
-- and drops a session's answer when its notification arrives, so a revoked
-- session fails on every instance at once, and within that second even if a
-- notification is lost. The payload is the session id, nothing else.

create function public.session_ended() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    perform pg_catalog.pg_notify('rabt_sessions', old.id::text);
    return null;
end
$$;
revoke all on function public.session_ended() from public;

create trigger sessions_revoked
    after update of revoked_at on public.sessions
    for each row
    when (old.revoked_at is null and new.revoked_at is not null)
    execute function public.session_ended();

create trigger sessions_deleted
    after delete on public.sessions
    for each row
    execute function public.session_ended();
