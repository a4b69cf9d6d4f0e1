-- Demo data for scripts/dev: a handful of users to look at. Idempotent.
insert into users (email, display_name, visibility) values
    ('ada@demo.rabt.dev', 'Ada Lovelace', 'public'),
    ('grace@demo.rabt.dev', 'Grace Hopper', 'public'),
    ('alan@demo.rabt.dev', 'Alan Turing', 'public'),
    ('quiet@demo.rabt.dev', 'A Private Person', 'private')
on conflict (lower(email)) do nothing;
