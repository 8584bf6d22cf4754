-- Webhook URLs carry credentials (userinfo, query tokens): the URL is kept encrypted with
-- the master key (purpose `webhook-url:<id>`), and `url` holds only its redacted form.
-- Rows from before keep their plaintext `url` and an empty `url_enc` until a server starts
-- with the master key and seals them (SQL cannot: the key never reaches the database).
ALTER TABLE webhook_endpoints ADD COLUMN url_enc TEXT;
