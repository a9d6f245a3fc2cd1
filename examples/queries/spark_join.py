"""Calls per campaign and customer region with Spark: call outcomes joined to campaigns and to their
CRM's customers. Usage: spark-submit spark_join.py LAKE [account] (the --dest path; `account` for call
outcomes extracted with --scope account or crm, which carry no campaign id).

Anonymized customers all share the id "": joined on it, each of their calls would meet every
anonymized customer of the CRM, so they are left out."""

import sys

from pyspark.sql import DataFrame, SparkSession, functions as F


def calls_per_region(spark: SparkSession, lake: str) -> DataFrame:
    calls, campaigns = _calls(spark, lake), spark.read.parquet(f"{lake}/campaigns").alias("ca")
    joined = calls.join(campaigns, F.col("co.campaign_id") == F.col("ca.campaign__id"))
    return _by_region(spark, lake, joined, [])


def account_calls_per_region(spark: SparkSession, lake: str) -> DataFrame:
    """The same for call outcomes without a campaign id: the campaign is found by its name within
    its data owner."""
    calls, campaigns = _calls(spark, lake), spark.read.parquet(f"{lake}/campaigns").alias("ca")
    joined = calls.join(
        campaigns,
        (F.col("co.campaign__name") == F.col("ca.campaign__name"))
        & (F.col("co.data_owner__name") == F.col("ca.data_owner__name")),
    )
    return _by_region(spark, lake, joined, [F.col("ca.campaign__id")])


def _calls(spark: SparkSession, lake: str) -> DataFrame:
    return spark.read.parquet(f"{lake}/call_outcomes").alias("co").where(F.col("co.crm__customer_id") != "")


def _by_region(spark: SparkSession, lake: str, calls: DataFrame, keys: list) -> DataFrame:
    customers = spark.read.parquet(f"{lake}/customers").alias("cu")
    group = [*keys, F.col("ca.campaign__name"), F.col("cu.crm__custom_info__3902").alias("region")]
    return (
        calls.join(
            customers,
            (F.col("cu.data_owner_id") == F.col("ca.data_owner__id"))
            & (F.col("cu.crm_type") == F.col("ca.campaign__crm_type"))
            & (F.col("cu.crm__customer_id") == F.col("co.crm__customer_id")),
        )
        .groupBy(*group)
        .agg(F.count(F.lit(1)).alias("calls"))
        .orderBy(*(["campaign__id"] if keys else []), "campaign__name", "region")
    )


if __name__ == "__main__":
    session = SparkSession.builder.appName("cube-join").getOrCreate()
    query = account_calls_per_region if sys.argv[2:] == ["account"] else calls_per_region
    query(session, sys.argv[1]).show(truncate=False)
