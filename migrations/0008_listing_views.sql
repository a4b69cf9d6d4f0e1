-- Listing views: the public read path of searches.
--
-- Row-level policies are security barriers, and Postgres keeps operators that
-- are not LEAKPROOF (`@@`, `&&`, the trigram `<%`) from being used as index
-- conditions under one, so a full-text search through the policy scans the
-- whole table. A listing view states the visibility rule in its own WHERE
-- clause and, being a plain (not security_barrier, not security_invoker) view
-- owned by the schema owner, lets the planner combine that rule with the
-- search's GIN indexes. Only SELECT is granted on a view; every write still
-- goes through the table and its policies. The schema lint allows exactly the
-- views listed in `tests/api/schema_lint.rs`, so a new one is a reviewed choice.

-- Public, active profiles: the same rows the users policy shows to a stranger.
create view public.user_directory as
    select id, display_name, headline, bio, skills, location, avatar_file_id,
           visibility, created_at, search
    from public.users
    where visibility = 'public' and suspended_at is null and deactivated_at is null;

grant select on public.user_directory to rabt_anonymous, rabt_authenticated;
