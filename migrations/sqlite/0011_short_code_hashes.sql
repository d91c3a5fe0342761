-- A code's keyed hash is kept as the first 128 bits of its HMAC (32 hex digits) instead of all
-- 256 (64): the index on `exchanges.code_hash` takes every new code at a random place, and at
-- half the size fewer of its pages are written and synced. Hashes stored before keep their
-- prefix, so a code spent before the upgrade is still found. A replay key that is not a code's
-- hash (a failure's, or a time-ordered outcome key) is never 64 hex digits.
UPDATE exchanges SET code_hash = substr(code_hash, 1, 32)
    WHERE length(code_hash) = 64 AND code_hash NOT GLOB '*[^0-9a-f]*';
UPDATE exchanges SET outcome_key = substr(outcome_key, 1, 32)
    WHERE length(outcome_key) = 64 AND outcome_key NOT GLOB '*[^0-9a-f]*';
UPDATE callbacks SET replay_key = substr(replay_key, 1, 32)
    WHERE length(replay_key) = 64 AND replay_key NOT GLOB '*[^0-9a-f]*';
UPDATE tokens SET code_hash = substr(code_hash, 1, 32)
    WHERE length(code_hash) = 64 AND code_hash NOT GLOB '*[^0-9a-f]*';
UPDATE purchases SET code_hash = substr(code_hash, 1, 32)
    WHERE length(code_hash) = 64 AND code_hash NOT GLOB '*[^0-9a-f]*';
