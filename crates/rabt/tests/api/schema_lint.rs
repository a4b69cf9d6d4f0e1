//! A lint over `pg_catalog` after all migrations: the rules every table and
//! function must keep, checked against the real schema (so it guards every
//! table later migrations add), and shown able to fail on a schema that breaks
//! each rule.

use sqlx::PgPool;

use crate::helpers::TestDb;

/// One broken rule: which, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    rule: &'static str,
    object: String,
}

async fn rows(pool: &PgPool, rule: &'static str, sql: &'static str) -> Vec<Violation> {
    let objects: Vec<String> = sqlx::query_scalar(sql).fetch_all(pool).await.unwrap();
    objects
        .into_iter()
        .map(|object| Violation { rule, object })
        .collect()
}

/// Every place a policy calls a request-context function (or reads a claim)
/// other than as a scalar subquery, which Postgres would evaluate per row.
fn unwrapped_calls(expression: &str) -> bool {
    ["auth.", "current_setting("].iter().any(|needle| {
        expression.match_indices(needle).any(|(at, _)| {
            let before = &expression[..at];
            !before.ends_with("SELECT ")
        })
    })
}

/// name, command, roles, USING, WITH CHECK
type PolicyRow = (String, String, Vec<String>, Option<String>, Option<String>);

async fn lint(pool: &PgPool) -> Vec<Violation> {
    let mut found = Vec::new();

    found.extend(
        rows(
            pool,
            "table_without_primary_key",
            "select format('%I.%I', n.nspname, c.relname) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p') \
               and n.nspname not in ('pg_catalog', 'information_schema') \
               and n.nspname not like 'pg\\_%' \
               and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e') \
               and not exists (select 1 from pg_constraint k \
                               where k.conrelid = c.oid and k.contype = 'p')",
        )
        .await,
    );

    // A table any application role can touch holds user data: RLS must be on,
    // with at least one policy.
    found.extend(
        rows(
            pool,
            "table_without_rls_or_policy",
            "select format('%I.%I', n.nspname, c.relname) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p') \
               and n.nspname not in ('pg_catalog', 'information_schema') \
               and n.nspname not like 'pg\\_%' \
               and exists (select 1 from unnest(array['rabt_anonymous', 'rabt_authenticated', \
                                                      'rabt_service', 'rabt_app']) r(role) \
                           where has_table_privilege(r.role, c.oid, \
                                 'select, insert, update, delete') \
                              or has_any_column_privilege(r.role, c.oid, \
                                 'select, insert, update')) \
               and (not c.relrowsecurity \
                    or not exists (select 1 from pg_policy p where p.polrelid = c.oid))",
        )
        .await,
    );

    found.extend(
        rows(
            pool,
            "foreign_key_without_index",
            "select format('%I.%I.%I', n.nspname, c.relname, k.conname) \
             from pg_constraint k \
             join pg_class c on c.oid = k.conrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             where k.contype = 'f' \
               and n.nspname not in ('pg_catalog', 'information_schema') \
               and n.nspname not like 'pg\\_%' \
               and not exists ( \
                   select 1 from pg_index i \
                   where i.indrelid = k.conrelid \
                     and (string_to_array(i.indkey::text, ' ')::int2[]) \
                         [1:array_length(k.conkey, 1)] @> k.conkey \
                     and (string_to_array(i.indkey::text, ' ')::int2[]) \
                         [1:array_length(k.conkey, 1)] <@ k.conkey)",
        )
        .await,
    );

    let policies: Vec<PolicyRow> = sqlx::query_as(
        "select format('%I.%I.%I', schemaname, tablename, policyname), cmd, \
                    roles::text[], qual, with_check \
             from pg_policies",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (name, command, roles, using, check) in policies {
        let expressions = [using.as_deref(), check.as_deref()];
        if expressions.into_iter().flatten().any(unwrapped_calls) {
            found.push(Violation {
                rule: "policy_calls_context_per_row",
                object: name.clone(),
            });
        }
        // Only the service role (workers, verified webhooks) may be trusted
        // with an unconditional write.
        let service_only = roles == ["rabt_service"];
        let writes = matches!(command.as_str(), "INSERT" | "UPDATE" | "DELETE" | "ALL");
        let plain_true = |e: Option<&str>| e.is_some_and(|e| e.trim() == "true");
        let open_write = plain_true(check.as_deref())
            || (matches!(command.as_str(), "UPDATE" | "DELETE" | "ALL")
                && plain_true(using.as_deref()));
        if writes && open_write && !service_only {
            found.push(Violation {
                rule: "write_policy_is_plain_true",
                object: name,
            });
        }
    }

    // A view runs with its owner's rights, past row-level security, unless it is
    // `security_invoker`. Such a view is a public read path by design
    // (migrations/0008): only the reviewed ones may exist, and none may be
    // writable by the application roles.
    found.extend(
        rows(
            pool,
            "view_bypassing_rls",
            "select format('%I.%I', n.nspname, c.relname) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('v', 'm') \
               and n.nspname not in ('pg_catalog', 'information_schema') \
               and n.nspname not like 'pg\\_%' \
               and not coalesce('security_invoker=true' = any (c.reloptions), false) \
               and (format('%I.%I', n.nspname, c.relname) \
                        not in ('public.user_directory', 'public.project_listings') \
                    or exists (select 1 from unnest(array['rabt_anonymous', \
                                   'rabt_authenticated', 'rabt_service', 'rabt_app']) r(role) \
                               where has_table_privilege(r.role, c.oid, \
                                     'insert, update, delete, truncate')))",
        )
        .await,
    );

    found.extend(
        rows(
            pool,
            "duplicate_index",
            "select string_agg(i.indexrelid::regclass::text, ' = ' \
                               order by i.indexrelid::regclass::text) \
             from pg_index i \
             join pg_class c on c.oid = i.indrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname not in ('pg_catalog', 'information_schema') \
               and n.nspname not like 'pg\\_%' \
             group by i.indrelid, i.indkey::text, i.indclass::text, i.indcollation::text, \
                      coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), \
                      coalesce(pg_get_expr(i.indpred, i.indrelid), '') \
             having count(*) > 1",
        )
        .await,
    );

    found.extend(
        rows(
            pool,
            "function_without_fixed_search_path",
            "select format('%I.%I(%s)', n.nspname, p.proname, \
                           pg_get_function_identity_arguments(p.oid)) \
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
             where n.nspname not in ('pg_catalog', 'information_schema') \
               and n.nspname not like 'pg\\_%' \
               and p.prokind in ('f', 'p') \
               and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e') \
               and not coalesce(exists (select 1 from unnest(p.proconfig) s \
                                        where s like 'search\\_path=%'), false)",
        )
        .await,
    );

    found.extend(
        rows(
            pool,
            "security_definer_executable_by_anonymous",
            "select format('%I.%I(%s)', n.nspname, p.proname, \
                           pg_get_function_identity_arguments(p.oid)) \
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
             where p.prosecdef \
               and n.nspname not in ('pg_catalog', 'information_schema') \
               and n.nspname not like 'pg\\_%' \
               and has_function_privilege('rabt_anonymous', p.oid, 'execute')",
        )
        .await,
    );

    found
}

#[tokio::test]
async fn the_migrated_schema_keeps_every_rule() {
    let db = TestDb::new().await;
    let violations = lint(&db.admin).await;
    assert!(violations.is_empty(), "schema lint: {violations:#?}");
}

#[tokio::test]
async fn the_lint_catches_each_broken_rule() {
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "create table lint_no_pk (x int); \
         grant select on lint_no_pk to rabt_authenticated; \
         create table lint_parent (id int primary key); \
         alter table lint_parent enable row level security; \
         create policy lint_parent_read on lint_parent for select to rabt_authenticated \
             using ((select auth.uid()) is not null); \
         grant select on lint_parent to rabt_authenticated; \
         create index lint_dup_a on lint_parent (id); \
         create index lint_dup_b on lint_parent (id); \
         create table lint_child (id int primary key, parent_id int references lint_parent (id)); \
         alter table lint_child enable row level security; \
         create policy lint_child_per_row on lint_child for select to rabt_authenticated \
             using (auth.uid() is not null); \
         create policy lint_child_open on lint_child for insert to rabt_authenticated \
             with check (true); \
         grant select, insert on lint_child to rabt_authenticated; \
         create view lint_open_view as select id from lint_parent; \
         grant select on lint_open_view to rabt_anonymous; \
         create view lint_invoker_view with (security_invoker = true) as select id from lint_parent; \
         create function lint_no_path() returns int language sql as 'select 1'; \
         create function lint_definer() returns int language sql security definer \
             set search_path = '' as 'select 1'; \
         grant execute on function lint_definer() to rabt_anonymous;",
    )
    .execute(&db.admin)
    .await
    .unwrap();

    let violations = lint(&db.admin).await;
    let has = |rule: &str, object: &str| {
        violations
            .iter()
            .any(|v| v.rule == rule && v.object.contains(object))
    };
    assert!(
        has("table_without_primary_key", "lint_no_pk"),
        "{violations:#?}"
    );
    assert!(
        has("table_without_rls_or_policy", "lint_no_pk"),
        "{violations:#?}"
    );
    assert!(
        has("foreign_key_without_index", "lint_child"),
        "{violations:#?}"
    );
    assert!(
        has("policy_calls_context_per_row", "lint_child_per_row"),
        "{violations:#?}"
    );
    assert!(
        !has("policy_calls_context_per_row", "lint_parent_read"),
        "{violations:#?}"
    );
    assert!(
        has("write_policy_is_plain_true", "lint_child_open"),
        "{violations:#?}"
    );
    assert!(
        has("duplicate_index", "lint_dup_a = lint_dup_b"),
        "{violations:#?}"
    );
    assert!(
        has("view_bypassing_rls", "lint_open_view"),
        "{violations:#?}"
    );
    assert!(
        !has("view_bypassing_rls", "lint_invoker_view"),
        "{violations:#?}"
    );
    assert!(
        has("function_without_fixed_search_path", "lint_no_path"),
        "{violations:#?}"
    );
    assert!(
        has("security_definer_executable_by_anonymous", "lint_definer"),
        "{violations:#?}"
    );
}

#[test]
fn wrapped_context_calls_pass_and_bare_ones_do_not() {
    assert!(!unwrapped_calls("(id = ( SELECT auth.uid() AS uid))"));
    assert!(unwrapped_calls("(id = auth.uid())"));
    assert!(unwrapped_calls(
        "(owner = (current_setting('request.user_id'::text))::uuid)"
    ));
    assert!(!unwrapped_calls("(visibility = 'public'::text)"));
}
