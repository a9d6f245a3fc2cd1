"""Calls per campaign and customer region with Polars: call outcomes joined to campaigns and to their
CRM's customers. Usage: python polars_join.py LAKE (the --dest path)."""

import sys

import polars as pl


def calls_per_region(lake: str) -> pl.DataFrame:
    # Call outcomes carry their own crm__* and campaign__* copies: take each column from its table.
    calls = pl.scan_parquet(f"{lake}/call_outcomes/**/*.parquet", hive_partitioning=True).select(
        "campaign_id", "crm__customer_id"
    )
    campaigns = pl.scan_parquet(f"{lake}/campaigns/").select(
        "campaign__id", "campaign__name", "data_owner__id", "campaign__crm_type"
    )
    customers = pl.scan_parquet(f"{lake}/customers/", hive_partitioning=True).select(
        "data_owner_id", "crm_type", "crm__customer_id", pl.col("crm__custom_info__3902").alias("region")
    )
    return (
        calls.join(campaigns, left_on="campaign_id", right_on="campaign__id")
        .join(
            customers,
            left_on=["data_owner__id", "campaign__crm_type", "crm__customer_id"],
            right_on=["data_owner_id", "crm_type", "crm__customer_id"],
        )
        .group_by("campaign__name", "region")
        .agg(pl.len().alias("calls"))
        .sort("campaign__name", "region")
        .collect()
    )


if __name__ == "__main__":
    print(calls_per_region(sys.argv[1]).write_csv(), end="")
