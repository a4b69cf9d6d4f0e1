-- Signed-in requests read users column by column: never the password hash.
-- (Row-level security already limits which rows; this limits what of them.)

revoke select on public.users from rabt_authenticated;
grant select (id, email, display_name, visibility, created_at, updated_at,
              email_verified_at, suspended_at, deactivated_at,
              headline, bio, skills, location, avatar_file_id, search)
    on public.users to rabt_authenticated;

-- The profile search names user_roles in an optional role filter. Anonymous
-- requests never filter by role, but may read the table name without an error:
-- they see no rows of it.
create policy user_roles_anonymous on public.user_roles for select to rabt_anonymous
    using (false);
grant select on public.user_roles to rabt_anonymous;
