-- Data of scripts/bench-projects: :users owners and :projects projects with a
-- marketplace's spread. Run as the superuser, in the benchmark database only.
--
-- Statuses: ~60 % open, 15 % in_progress, 10 % completed, 10 % draft,
-- 3 % cancelled, 2 % archived, independent of age. Categories (20) and skills
-- (60, 2 to 5 a project) are skewed: the first of each list is the most
-- frequent. Titles, summaries and descriptions are assembled from word lists
-- with a skewed draw, so the full-text search meets common words (`app`,
-- `website`, `api`: 10 to 30 % of projects), rare ones (`sommelier`,
-- `kintsugi`: under 1 %) and codenames (~125 projects each). created_at is
-- spread over two years; rows are inserted oldest first, so the heap order
-- follows created_at as it would in production.
--
-- The status guard (migrations/0009) lets a project be inserted only as an
-- empty draft and then moves it one step at a time, writing a history row per
-- step. Walking a million rows through the machine would rewrite each row up
-- to four times, so the trigger is disabled for the insert instead and
-- published_at is filled here (the history table stays empty, which no
-- measured query reads). The trigger is enabled again at the end.

\set ON_ERROR_STOP on
\o /dev/null
select setseed(0.20261125);
\o

insert into users (email, display_name, headline, skills, location, visibility, created_at)
select 'owner' || g || '@bench.rabt.dev',
       (array['Ada','Alan','Grace','Linus','Margaret','Robin','Sam','Kim','John','Eva'])[1 + g % 10]
         || ' ' || (array['Lovelace','Turing','Hopper','Torvalds','Hamilton','Milner','Altman',
                          'Nakamura','Backus','Smith','Garcia','Okafor'])[1 + (g / 10) % 12] || ' ' || g,
       (array['Founder','Product manager','Agency owner','CTO','Operations lead'])[1 + g % 5],
       '{}',
       (array['London','Berlin','Lagos','Tokyo','Austin'])[1 + g % 5],
       case when g % 20 = 0 then 'private' else 'public' end,
       now() - interval '800 days' + g * interval '1 minute'
from generate_series(1, :users) g;

create temporary table owners as
    select row_number() over (order by id) as n, id from users;
create unique index on owners (n);

alter table projects disable trigger projects_status_guard;

insert into projects (owner_id, title, summary, description, description_html, category,
                      skills, budget_min, budget_max, currency, remote, location, status,
                      created_at, updated_at, published_at)
select o.id, d.title, d.summary, d.description, '<p>' || d.description || '</p>',
       d.category, d.skills,
       case when d.has_budget then d.budget_min end,
       case when d.has_budget then d.budget_min * d.spread end,
       case when d.has_budget then d.currency end,
       d.remote,
       case when not d.remote or d.r_loc < 0.6 then d.location end,
       d.status, d.created_at, d.created_at + interval '3 hours',
       case when d.status <> 'draft' then d.created_at + interval '2 hours' end
from (
    select s.*,
           initcap(w.lead[1 + floor(power(s.r1, 1.5) * cardinality(w.lead))::int]) || ' '
             || w.thing[1 + floor(power(s.r2, 2.0) * cardinality(w.thing))::int] || ' for '
             || w.domain[1 + floor(power(s.r3, 2.5) * cardinality(w.domain))::int] as title,
           initcap(w.adjective[1 + floor(power(s.r4, 1.5) * cardinality(w.adjective))::int]) || ' '
             || w.thing[1 + floor(power(s.r5, 2.0) * cardinality(w.thing))::int] || ', '
             || w.timeline[1 + floor(s.r6 * cardinality(w.timeline))::int] || '.' as summary,
           array_to_string(array(
               select w.vocab[1 + floor(power(random(), 3.0) * cardinality(w.vocab))::int]
               from generate_series(1, 20 + (s.g::int8 * 7919) % 30)), ' ')
             || case when s.r_rare < 0.1
                     then ' ' || w.rare[1 + floor(s.r_rare * 10 * cardinality(w.rare))::int]
                     else '' end
             || '. Codename ' || w.syllable[1 + s.g % 20] || w.syllable[1 + (s.g / 20) % 20]
             || w.syllable[1 + (s.g / 400) % 20] || '.' as description,
           w.category[1 + floor(power(s.r7, 2.0) * cardinality(w.category))::int] as category,
           array(select distinct w.skill[1 + floor(power(random(), 2.0)
                                                   * cardinality(w.skill))::int]
                 from generate_series(1, 2 + (s.g::int8 * 104729) % 4)
                 where s.g is not null) as skills,
           w.city[1 + floor(power(s.r8, 1.5) * cardinality(w.city))::int] as location,
           (array['usd','usd','usd','eur','eur','gbp'])[1 + floor(s.r9 * 6)::int] as currency,
           case when s.r10 < 0.10 then 'draft'
                when s.r10 < 0.70 then 'open'
                when s.r10 < 0.85 then 'in_progress'
                when s.r10 < 0.95 then 'completed'
                when s.r10 < 0.98 then 'cancelled'
                else 'archived' end as status
    from (
        select g, random() as r1, random() as r2, random() as r3, random() as r4,
               random() as r5, random() as r6, random() as r7, random() as r8, random() as r9,
               random() as r10, random() as r_loc, random() as r_owner, random() as r_rare,
               random() < 0.8 as has_budget,
               (10000 * (1 + floor(power(random(), 2.0) * 500)))::bigint as budget_min,
               1 + floor(random() * 3)::int as spread,
               random() < 0.55 as remote,
               now() - interval '730 days'
                 + (g::float8 / :projects) * interval '730 days'
                 - random() * interval '1 hour' as created_at
        from generate_series(1, :projects) g
        offset 0 -- evaluate each random() once, not once per reference
    ) s
    cross join (select
        array['build','redesign','migrate','fix','extend','optimise','launch','maintain',
              'automate','audit','integrate','prototype'] as lead,
        array['website','mobile app','api','dashboard','online shop','landing page',
              'data pipeline','chatbot','crm integration','payment flow','search',
              'booking system','admin panel','reporting tool','browser extension',
              'design system','newsletter','game','smart contract','ml model','etl job',
              'cli tool','wordpress theme','shopify store','kubernetes cluster','ci pipeline',
              'analytics setup','voice app','ar prototype','firmware'] as thing,
        array['startup','restaurant','nonprofit','dental clinic','law firm','bakery','gym',
              'school','real estate agency','logistics company','fintech','hotel','podcast',
              'fashion brand','museum','brewery','architecture studio','veterinary practice',
              'car dealer','music festival','coworking space','bookshop','florist',
              'language school','yoga studio','ski resort','vineyard','observatory',
              'sommelier','hydroponics farm','beekeeper','glassblower','luthier',
              'cartographer','taxidermist','falconry club','numismatist','harpsichord maker',
              'glaciology lab','origami society'] as domain,
        array['simple','modern','fast','secure','accessible','scalable','multilingual',
              'offline-first','lightweight','custom','responsive','realtime'] as adjective,
        array['within two weeks','over the next month','as a long-term engagement',
              'before the launch','by the end of the quarter','part time',
              'with weekly check-ins','fixed scope'] as timeline,
        array['we','need','a','the','and','to','with','for','our','is','looking','someone',
              'who','can','help','us','on','in','this','project','work','experience',
              'please','more','details',
              'app','website','api','design','data','team','build','new','existing',
              'backend','frontend','mobile','web','integration','payments','dashboard',
              'users','deliver','features','performance','support','clean','code','tests',
              'deployment','cloud','database','customers','product','launch','maintain',
              'improve','migration','security','reports','analytics','search','booking',
              'admin','automation','workflow','email','notifications','store','checkout',
              'inventory','orders','shipping','invoices','accounting','marketing','seo',
              'content','branding','logo','illustration','video','audio','podcast',
              'translation','documentation','onboarding','accessibility','responsive',
              'prototype','wireframes','figma','sketch','react','vue','angular','svelte',
              'django','rails','laravel','express','spring','dotnet','rust','golang',
              'kotlin','swift','flutter','unity','unreal','blender','kubernetes','docker',
              'terraform','aws','gcp','azure','postgres','mysql','mongodb','redis','kafka',
              'spark','airflow','dbt','snowflake','tableau','powerbi','excel','sheets',
              'zapier','shopify','wordpress','webflow','stripe','paypal','twilio','openai',
              'chatgpt','llm','embeddings','vector','scraping','crawler','etl','warehouse',
              'realtime','websocket','graphql','grpc','oauth','sso','gdpr','hipaa','pci',
              'audit','pentest','firmware','embedded','bluetooth','iot','robotics','drone',
              'blockchain','solidity','nft','defi','wallet','game','multiplayer','shader',
              'animation','3d','ar','vr'] as vocab,
        -- One description in ten names one of these (each in ~0.3 % of projects).
        array['sommelier','hydroponics','beekeeping','glassblowing','luthier','cartography',
              'taxidermy','falconry','numismatics','harpsichord','glaciology','origami',
              'calligraphy','bonsai','perfumery','letterpress','horology','speleology',
              'lepidoptera','kintsugi','apiary','marquetry','bookbinding','cooperage',
              'ikebana','topiary','sericulture','oenology','vexillology','philately'] as rare,
        -- Codenames of three syllables: 8,000 words of ~125 projects each.
        array['ka','lo','mar','ven','tir','zu','pel','dro','qui','bas','nor','fen','sil',
              'ok','ra','tem','vol','gri','han','ule'] as syllable,
        array['web-development','mobile-development','design','data-science','devops',
              'marketing','writing','ecommerce','backend','frontend','machine-learning',
              'qa-testing','security','game-development','blockchain','embedded',
              'video-production','translation','customer-support','consulting'] as category,
        array['javascript','react','python','typescript','node','sql','figma','aws',
              'django','php','wordpress','docker','java','css','html','flutter','swift',
              'kotlin','go','rust','postgres','kubernetes','terraform','vue','angular',
              'laravel','rails','ruby','csharp','dotnet','unity','seo','copywriting',
              'illustrator','photoshop','excel','tableau','pandas','pytorch','tensorflow',
              'spark','kafka','redis','mongodb','graphql','shopify','solidity','c',
              'cpp','embedded-c','linux','bash','selenium','cypress','jest','premiere',
              'after-effects','blender','webflow','zapier'] as skill,
        array['London','Berlin','New York','Lagos','Bangalore','Toronto','Paris','Madrid',
              'Amsterdam','Sao Paulo','Tokyo','Sydney','Nairobi','Warsaw','Lisbon',
              'Mexico City','Cairo','Singapore','Austin','Dublin','Stockholm','Seoul',
              'Istanbul','Buenos Aires','Cape Town'] as city
    ) w
    offset 0
) d
join owners o on o.n = 1 + floor(d.r_owner * :users)::int;

alter table projects enable trigger projects_status_guard;
drop table owners;

-- The words of public projects (migrations/0030), which its trigger adds when a
-- project is published; the insert above skipped the walk that fires it.
select to_regclass('public.project_search_words') is not null as has_search_words \gset
\if :has_search_words
insert into project_search_words (word)
select distinct w
from projects p, unnest(tsvector_to_array(p.search)) w
where p.status in ('open', 'in_progress', 'completed')
on conflict do nothing;
\endif
