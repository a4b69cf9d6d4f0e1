-- The provider's access token of a linked identity, sealed with AES-256-GCM by
-- the server (crates/rabt/src/crypto.rs): nonce, ciphertext and tag, with the
-- id of the key that sealed it, so `rabt keys rotate` can find what an old key
-- still holds.

alter table public.oauth_identities
    add column access_token bytea,
    add column token_key_id text,
    add constraint oauth_identities_token_sealed check ((access_token is null) = (token_key_id is null)),
    add constraint oauth_identities_token_size check (octet_length(access_token) <= 8192),
    add constraint oauth_identities_token_key_id_length check (char_length(token_key_id) <= 64);

-- A user lists their own identities, never the sealed tokens.
revoke select on public.oauth_identities from rabt_authenticated;
grant select (id, user_id, provider, subject, email, created_at)
    on public.oauth_identities to rabt_authenticated;
