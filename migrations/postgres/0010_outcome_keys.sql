-- A code's callback outcome is found through the code's exchange: `outcome_key` is the outcome's
-- `replay_key`. On SQLite a new exchange takes a time-ordered key, so that recording its outcome
-- appends to the replay index; here it takes the code's hash, as outcomes were keyed before: two
-- replicas, one recording an outcome for a code that has no exchange yet and one claiming the
-- code, are ordered by the unique index on that shared key.
-- Exchanges recorded before have none: their outcomes are found under the code's hash, the key
-- they were recorded under.
ALTER TABLE exchanges ADD COLUMN outcome_key TEXT;
