-- Calls per campaign and customer region (Poststed, crm__custom_info__3902): call outcomes joined
-- to campaigns (campaign_id = campaign__id) and to their CRM's customers (crm__customer_id within
-- the campaign's data owner and CRM type). Anonymized customers all share the id '': joined on it,
-- each of their calls would meet every anonymized customer of the CRM, so they are left out.
-- Run: duckdb -c "SET VARIABLE lake = 'out'" -f examples/queries/duckdb_join.sql
SELECT ca.campaign__name,
       cu.crm__custom_info__3902 AS region,
       count(*) AS calls
FROM read_parquet(getvariable('lake') || '/call_outcomes/**/*.parquet', hive_partitioning = true) AS co
JOIN read_parquet(getvariable('lake') || '/campaigns/*.parquet') AS ca
  ON co.campaign_id = ca.campaign__id
JOIN read_parquet(getvariable('lake') || '/customers/**/*.parquet', hive_partitioning = true) AS cu
  ON cu.data_owner_id = ca.data_owner__id
 AND cu.crm_type = ca.campaign__crm_type
 AND cu.crm__customer_id = co.crm__customer_id
WHERE co.crm__customer_id <> ''
GROUP BY ALL
ORDER BY ALL;
