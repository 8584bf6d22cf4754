-- Event retention takes the webhook deliveries (and their attempts) of the events it
-- deletes: found by event.
CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_id);
