-- Results too large for a row (those that arrived in chunks) are files in <work-dir>/results,
-- named by the sha256 of their bytes; the row then holds an empty result and the file's name.
-- Retention deletes the files no row names any more (after a grace period, like blobs).
ALTER TABLE job_results ADD COLUMN result_file TEXT;
