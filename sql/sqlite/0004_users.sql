-- The authenticated user who started each context and submitted each job (spark.jobserver.auth);
-- NULL where authentication was off. ("user" is a reserved word in SQL.)
ALTER TABLE contexts ADD COLUMN user_name TEXT;
ALTER TABLE jobs ADD COLUMN user_name TEXT;
