-- MondiaPay's free-text `message` (of a rejected code, or of a failed purchase's redirect) is no
-- longer stored: it may say anything, even repeat what was sent to MondiaPay. The columns stay,
-- empty.
UPDATE exchanges SET message = NULL WHERE message IS NOT NULL;
UPDATE callbacks SET message = NULL WHERE message IS NOT NULL;

-- Failure outcomes are bounded in all, the oldest trimmed first.
CREATE INDEX callbacks_failures_by_age ON callbacks (updated_at) WHERE outcome <> 'succeeded';
