-- A code's callback outcome is found through the code's exchange: `outcome_key` is the outcome's
-- `replay_key`. A new exchange takes a time-ordered key, so recording its outcome appends to the
-- replay index instead of writing a page at a random place in it (the code's hash is random).
-- Exchanges recorded before have none: their outcomes are found under the code's hash, the key
-- they were recorded under.
ALTER TABLE exchanges ADD COLUMN outcome_key TEXT;
