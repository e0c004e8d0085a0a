-- Only a text's provider id is ever looked up (a Twilio status callback names its message's
-- SID); an email's provider id is the SMTP Message-ID, matched through the touch id it
-- carries (0014). Indexing every email's Message-ID here inserted one entry at a random place
-- in the index per email sent, the cost 0014 took off `touches_message_id`. The lookup
-- (`Tx::text_by_provider_id`) says `sent_channel = 'text'`, so this index serves it.
DROP INDEX IF EXISTS touches_provider_id;
CREATE INDEX touches_provider_id ON touches(provider_id)
    WHERE sent_channel = 'text' AND provider_id IS NOT NULL;
