"""Calls per campaign and customer region with Polars: call outcomes joined to campaigns and to their
CRM's customers. Usage: python polars_join.py LAKE [account] (the --dest path; `account` for call
outcomes extracted with --scope account or crm, which carry no campaign id).

Anonymized customers all share the id "": joined on it, each of their calls would meet every
anonymized customer of the CRM, so they are left out."""

import sys

import polars as pl


def calls_per_region(lake: str) -> pl.DataFrame:
    # Call outcomes carry their own crm__* and campaign__* copies: take each column from its table.
    calls = (
        pl.scan_parquet(f"{lake}/call_outcomes/**/*.parquet", hive_partitioning=True)
        .select("campaign_id", "crm__customer_id")
        .filter(pl.col("crm__customer_id") != "")
    )
    campaigns = pl.scan_parquet(f"{lake}/campaigns/").select(
        "campaign__id", "campaign__name", "data_owner__id", "campaign__crm_type"
    )
    return by_region(calls.join(campaigns, left_on="campaign_id", right_on="campaign__id"), lake)


def account_calls_per_region(lake: str) -> pl.DataFrame:
    """The same for call outcomes without a campaign id: the campaign is found by its name within
    its data owner."""
    calls = (
        pl.scan_parquet(f"{lake}/call_outcomes/**/*.parquet", hive_partitioning=True)
        .select("campaign__name", "data_owner__name", "crm__customer_id")
        .filter(pl.col("crm__customer_id") != "")
    )
    campaigns = pl.scan_parquet(f"{lake}/campaigns/").select(
        "campaign__id", "campaign__name", "data_owner__name", "data_owner__id", "campaign__crm_type"
    )
    with_campaign = calls.join(campaigns, on=["campaign__name", "data_owner__name"])
    return by_region(with_campaign, lake, ["campaign__id"])


def by_region(calls: pl.LazyFrame, lake: str, keys: list[str] | None = None) -> pl.DataFrame:
    """Calls (with their campaign's columns) joined to their CRM's customers, counted per campaign
    and customer region."""
    customers = pl.scan_parquet(f"{lake}/customers/", hive_partitioning=True).select(
        "data_owner_id", "crm_type", "crm__customer_id", pl.col("crm__custom_info__3902").alias("region")
    )
    group = [*(keys or []), "campaign__name", "region"]
    return (
        calls.join(
            customers,
            left_on=["data_owner__id", "campaign__crm_type", "crm__customer_id"],
            right_on=["data_owner_id", "crm_type", "crm__customer_id"],
        )
        .group_by(group)
        .agg(pl.len().alias("calls"))
        .sort(group)
        .collect()
    )


if __name__ == "__main__":
    query = account_calls_per_region if sys.argv[2:] == ["account"] else calls_per_region
    print(query(sys.argv[1]).write_csv(), end="")
