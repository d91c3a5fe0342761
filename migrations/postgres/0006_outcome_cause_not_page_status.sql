-- The store keeps what happened, not how a page shows it (see
-- migrations/sqlite/0006_outcome_cause_not_page_status.sql).
ALTER TABLE callbacks ADD COLUMN cause TEXT;
UPDATE callbacks SET cause = CASE WHEN page_status = 504 THEN 'timed_out' ELSE 'no_answer' END
    WHERE outcome = 'unavailable';
ALTER TABLE callbacks DROP COLUMN page_status;
