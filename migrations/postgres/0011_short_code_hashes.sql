-- A code's keyed hash is kept as the first 128 bits of its HMAC (32 hex digits) instead of all
-- 256 (64): the index on `exchanges.code_hash` takes every new code at a random place, and at
-- half the size fewer of its pages are written. Hashes stored before keep their prefix, so a
-- code spent before the upgrade is still found. A replay key that is not a code's hash (a
-- failure's) is never 64 hex digits.
UPDATE exchanges SET code_hash = left(code_hash, 32) WHERE code_hash ~ '^[0-9a-f]{64}$';
UPDATE exchanges SET outcome_key = left(outcome_key, 32) WHERE outcome_key ~ '^[0-9a-f]{64}$';
UPDATE callbacks SET replay_key = left(replay_key, 32) WHERE replay_key ~ '^[0-9a-f]{64}$';
UPDATE tokens SET code_hash = left(code_hash, 32) WHERE code_hash ~ '^[0-9a-f]{64}$';
UPDATE purchases SET code_hash = left(code_hash, 32) WHERE code_hash ~ '^[0-9a-f]{64}$';
