-- A signed-in request records its own security events (role changes,
-- moderation) in the transaction of the change itself, so the change and its
-- audit entry commit together. It can only append entries naming itself as the
-- actor; reading stays with users.read_private, and nobody changes or deletes
-- an entry.
create policy audit_log_append_own on public.audit_log for insert to rabt_authenticated
    with check (actor_id = (select auth.uid()));
grant insert on public.audit_log to rabt_authenticated;
