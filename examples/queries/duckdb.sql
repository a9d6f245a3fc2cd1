-- Call outcomes per day and type, with the custom columns under their labels.
-- Run: duckdb -c "SET VARIABLE lake = 'out'" -f examples/queries/duckdb.sql
-- (or replace getvariable('lake') by the --dest path; s3:// works with the httpfs extension).
SELECT "date",
       campaign_id,
       call_outcome__type,
       count(*) AS calls
FROM read_parquet(getvariable('lake') || '/call_outcomes/*/*/*.parquet', hive_partitioning = true)
GROUP BY ALL
ORDER BY "date", campaign_id, call_outcome__type;
