-- Storing a token marks its code's exchange succeeded within the same statement (see
-- migrations/sqlite/0004_token_marks_exchange.sql).
CREATE FUNCTION tokens_mark_exchange_succeeded() RETURNS trigger AS $$
BEGIN
    UPDATE exchanges
    SET state = 'succeeded', token_id = NEW.id, lease_until = NULL, updated_at = NEW.obtained_at
    WHERE code_hash = NEW.code_hash;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER tokens_mark_exchange_succeeded AFTER INSERT ON tokens
    FOR EACH ROW EXECUTE FUNCTION tokens_mark_exchange_succeeded();
