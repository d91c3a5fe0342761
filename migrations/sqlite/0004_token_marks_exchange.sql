-- Storing a token marks its code's exchange succeeded within the same statement: one round trip
-- to the single writer connection instead of a four-step transaction.
CREATE TRIGGER tokens_mark_exchange_succeeded AFTER INSERT ON tokens
BEGIN
    UPDATE exchanges
    SET state = 'succeeded', token_id = NEW.id, lease_until = NULL, updated_at = NEW.obtained_at
    WHERE code_hash = NEW.code_hash;
END;
