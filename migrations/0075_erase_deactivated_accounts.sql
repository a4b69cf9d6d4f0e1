-- Accounts deactivated by `DELETE /users/{id}` before erasure existed were
-- promised it: each gets an admin's erasure request (not cancelled by
-- signing in), due 30 days (the default grace) after its deactivation, and
-- its job.
with requested as (
    insert into public.account_erasures (user_id, requested_by, by_self, erase_after)
    select u.id, null, false, u.deactivated_at + interval '30 days'
    from public.users u
    where u.deactivated_at is not null
      and not exists (select from public.account_erasures e where e.user_id = u.id)
    returning user_id, erase_after
)
insert into public.jobs (kind, payload, max_attempts, run_at)
select 'privacy.erase', jsonb_build_object('user_id', user_id), 25, erase_after
from requested;
