-- The store keeps what happened, not how a page shows it: an `unavailable` outcome records why
-- (`timed_out`: MondiaPay did not answer in time; `no_answer`: no usable answer), and the result
-- page's HTTP status is the edge's to choose. Outcomes recorded before carry their page's status
-- over: 504 was a timeout, any other unavailable one had no usable answer (502).
ALTER TABLE callbacks ADD COLUMN cause TEXT;
UPDATE callbacks SET cause = CASE WHEN page_status = 504 THEN 'timed_out' ELSE 'no_answer' END
    WHERE outcome = 'unavailable';
ALTER TABLE callbacks DROP COLUMN page_status;
