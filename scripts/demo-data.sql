-- Demo data for scripts/dev: a handful of users to look at. Idempotent.
insert into users (email, display_name, visibility) values
    ('ada@demo.rabt.dev', 'Ada Lovelace', 'public'),
    ('grace@demo.rabt.dev', 'Grace Hopper', 'public'),
    ('alan@demo.rabt.dev', 'Alan Turing', 'public'),
    ('quiet@demo.rabt.dev', 'A Private Person', 'private')
on conflict (lower(email)) do nothing;

-- Projects: drafts first (the database only creates drafts), then published
-- along the status machine. Idempotent by owner and title.
insert into projects (owner_id, title, summary, description, description_html, category,
                      skills, budget_min, budget_max, currency, remote, location)
select u.id, p.title, p.summary, p.description, '<p>' || p.description || '</p>', p.category,
       p.skills, p.budget_min, p.budget_max, p.currency, p.remote, p.location
from (values
    ('ada@demo.rabt.dev', 'Analytical engine simulator', 'A web simulator of the engine',
     'Build a faithful simulator that runs the original programs.', 'web',
     array['rust', 'wasm'], 300000, 800000, 'gbp', true, null),
    ('ada@demo.rabt.dev', 'Bernoulli numbers notebook', 'An interactive notebook',
     'Notes G, rewritten as an interactive notebook.', 'data',
     array['python', 'math'], 50000, 150000, 'gbp', true, null),
    ('grace@demo.rabt.dev', 'COBOL migration', 'Move a payroll system to Rust',
     'A careful, tested migration of a payroll system.', 'backend',
     array['cobol', 'rust', 'sql'], 2000000, 5000000, 'usd', false, 'Arlington'),
    ('grace@demo.rabt.dev', 'Compiler course', 'Teach compilers to newcomers',
     'A short course with exercises.', 'education',
     array['teaching', 'compilers'], null, null, null, true, null),
    ('alan@demo.rabt.dev', 'Codebreaking puzzles app', 'Mobile puzzles',
     'Daily cipher puzzles for phones.', 'mobile',
     array['kotlin', 'swift', 'crypto'], 1000000, 2500000, 'gbp', true, null)
) as p(email, title, summary, description, category, skills, budget_min, budget_max,
       currency, remote, location)
join users u on lower(u.email) = p.email
where not exists (select 1 from projects x where x.owner_id = u.id and x.title = p.title);

update projects set status = 'open'
where status = 'draft'
  and title in ('Analytical engine simulator', 'COBOL migration', 'Codebreaking puzzles app',
                'Compiler course');
update projects set status = 'in_progress'
where status = 'open' and title = 'Compiler course';
