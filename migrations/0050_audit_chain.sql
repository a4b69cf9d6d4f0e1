-- A tamper-evident audit log (API.md §10): every entry holds the hash of the
-- entry before it and of its own content, so `rabt audit verify` finds an
-- altered or removed entry. Entries are chained in the transaction that
-- appends them, one writer at a time (an advisory lock held to commit).
--
-- The actor is hashed in as a digest of their id, which stays when the id
-- is set to null by the user's erasure: the chain survives erasure, and a
-- remaining id must still match its digest. Pruning (retention) removes the
-- oldest entries and records the last one removed as the anchor the
-- remaining chain starts from.

alter table public.audit_log
    add column seq          bigint,
    add column actor_digest bytea,
    add column prev_hash    bytea,
    add column hash         bytea;

create table public.audit_anchor (
    id        boolean primary key default true,
    seq       bigint not null,
    hash      bytea not null,
    pruned_at timestamptz not null default now(),
    constraint audit_anchor_one_row check (id)
);
alter table public.audit_anchor enable row level security;
create policy audit_anchor_service_read on public.audit_anchor for select to rabt_service
    using (true);
grant select on public.audit_anchor to rabt_service;

-- The content hash: SHA-256 of the previous hash followed by a canonical
-- JSON array of the entry's fields (times in microseconds since the epoch).
create function public.audit_entry_hash(
    seq bigint, at timestamptz, actor_digest bytea, action text, subject_id uuid,
    ip inet, user_agent text, details jsonb, prev_hash bytea
) returns bytea
    language sql
    stable
    set search_path = ''
as $$
    select pg_catalog.sha256(
        coalesce(prev_hash, '\x'::bytea)
        || pg_catalog.convert_to(pg_catalog.jsonb_build_array(
            seq,
            (extract(epoch from at) * 1000000)::bigint,
            pg_catalog.encode(actor_digest, 'hex'),
            action,
            subject_id,
            ip::text,
            user_agent,
            details
        )::text, 'UTF8'))
$$;
revoke all on function public.audit_entry_hash(bigint, timestamptz, bytea, text, uuid, inet, text, jsonb, bytea) from public;
grant execute on function public.audit_entry_hash(bigint, timestamptz, bytea, text, uuid, inet, text, jsonb, bytea) to rabt_service;

create function public.audit_actor_digest(actor uuid) returns bytea
    language sql
    immutable
    set search_path = ''
as $$
    select case when actor is null then null
                else pg_catalog.sha256(pg_catalog.convert_to(actor::text, 'UTF8')) end
$$;
revoke all on function public.audit_actor_digest(uuid) from public;
grant execute on function public.audit_actor_digest(uuid) to rabt_service;

-- Chains each new entry, whoever inserts it; whatever the insert said about
-- the chain's columns is replaced. Runs as the schema owner, which reads the
-- chain's end that request roles may not.
create function public.audit_log_chain() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    last_seq  bigint;
    last_hash bytea;
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('rabt.audit_chain', 0));
    select l.seq, l.hash into last_seq, last_hash
      from public.audit_log l order by l.seq desc limit 1;
    if last_seq is null then
        select a.seq, a.hash into last_seq, last_hash from public.audit_anchor a;
    end if;
    new.seq := coalesce(last_seq, 0) + 1;
    new.prev_hash := last_hash;
    new.actor_digest := public.audit_actor_digest(new.actor_id);
    new.hash := public.audit_entry_hash(new.seq, new.at, new.actor_digest, new.action,
        new.subject_id, new.ip, new.user_agent, new.details, new.prev_hash);
    return new;
end
$$;
revoke all on function public.audit_log_chain() from public;

-- The entries already written, chained in the order they were written.
do $$
declare
    entry record;
    n     bigint := 0;
    prev  bytea;
    digest bytea;
begin
    for entry in select * from public.audit_log order by at, id loop
        n := n + 1;
        digest := public.audit_actor_digest(entry.actor_id);
        update public.audit_log set
            seq = n,
            actor_digest = digest,
            prev_hash = prev,
            hash = public.audit_entry_hash(n, entry.at, digest, entry.action, entry.subject_id,
                entry.ip, entry.user_agent, entry.details, prev)
        where id = entry.id
        returning hash into prev;
    end loop;
end
$$;

alter table public.audit_log
    alter column seq set not null,
    alter column hash set not null,
    add constraint audit_log_seq_key unique (seq);

create trigger audit_log_chain before insert on public.audit_log
    for each row execute function public.audit_log_chain();

-- Retention: removes the entries older than `before` (a prefix of the
-- chain) and moves the anchor to the last one removed. Returns how many went.
create function public.audit_prune(before timestamptz) returns bigint
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    last_seq  bigint;
    last_hash bytea;
    removed   bigint;
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('rabt.audit_chain', 0));
    select l.seq, l.hash into last_seq, last_hash
      from public.audit_log l where l.at < before order by l.seq desc limit 1;
    if last_seq is null then
        return 0;
    end if;
    delete from public.audit_log where seq <= last_seq;
    get diagnostics removed = row_count;
    insert into public.audit_anchor (id, seq, hash) values (true, last_seq, last_hash)
        on conflict (id) do update set seq = excluded.seq, hash = excluded.hash,
                                       pruned_at = pg_catalog.now();
    return removed;
end
$$;
revoke all on function public.audit_prune(timestamptz) from public;
grant execute on function public.audit_prune(timestamptz) to rabt_service;

-- Admins with `jobs.manage` read the queue, never a job's arguments (they
-- may hold tokens).
create policy jobs_admin_read on public.jobs for select to rabt_authenticated
    using ((select auth.has_permission('jobs.manage')));
grant select (id, kind, status, attempts, max_attempts, run_at, last_error, created_at,
              updated_at, finished_at) on public.jobs to rabt_authenticated;
