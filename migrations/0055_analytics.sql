-- The admin analytics overview (API.md §10) counts rows by day over a period:
-- each table it counts is indexed by creation time, so a period reads its
-- days only, however many rows came before.

create index users_created_at_idx on public.users (created_at);
create index sessions_created_at_idx on public.sessions (created_at);
create index applications_created_at_idx on public.applications (created_at);
create index messages_created_at_idx on public.messages (created_at);
