"""Call outcomes per day and type with Polars. Usage: python polars_outcomes.py LAKE (the --dest path)."""

import sys

import polars as pl


def outcomes_per_day(lake: str) -> pl.DataFrame:
    return (
        pl.scan_parquet(f"{lake}/call_outcomes/**/*.parquet", hive_partitioning=True)
        .group_by("date", "campaign_id", "call_outcome__type")
        .agg(pl.len().alias("calls"))
        .sort("date", "campaign_id", "call_outcome__type")
        .collect()
    )


if __name__ == "__main__":
    print(outcomes_per_day(sys.argv[1]).write_csv(), end="")
