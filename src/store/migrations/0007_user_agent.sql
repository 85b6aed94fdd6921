-- The User-Agent of the REGISTER that made each binding, for the
-- operator's listings (`parley registrations`).
ALTER TABLE bindings ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
