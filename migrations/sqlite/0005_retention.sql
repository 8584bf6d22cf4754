-- Event retention takes the webhook deliveries (and their attempts) of the events it
-- deletes: found by event.
CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_id);
-- The hourly sweep of ended sessions, tokens and setup links: found by expiry.
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX oauth_tokens_expires ON oauth_tokens(expires_at);
CREATE INDEX setup_links_expires ON setup_links(expires_at);
