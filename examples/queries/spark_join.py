"""Calls per campaign and customer region with Spark: call outcomes joined to campaigns and to their
CRM's customers. Usage: spark-submit spark_join.py LAKE (the --dest path)."""

import sys

from pyspark.sql import DataFrame, SparkSession, functions as F


def calls_per_region(spark: SparkSession, lake: str) -> DataFrame:
    calls = spark.read.parquet(f"{lake}/call_outcomes").alias("co")
    campaigns = spark.read.parquet(f"{lake}/campaigns").alias("ca")
    customers = spark.read.parquet(f"{lake}/customers").alias("cu")
    return (
        calls.join(campaigns, F.col("co.campaign_id") == F.col("ca.campaign__id"))
        .join(
            customers,
            (F.col("cu.data_owner_id") == F.col("ca.data_owner__id"))
            & (F.col("cu.crm_type") == F.col("ca.campaign__crm_type"))
            & (F.col("cu.crm__customer_id") == F.col("co.crm__customer_id")),
        )
        .groupBy(F.col("ca.campaign__name"), F.col("cu.crm__custom_info__3902").alias("region"))
        .agg(F.count(F.lit(1)).alias("calls"))
        .orderBy("campaign__name", "region")
    )


if __name__ == "__main__":
    session = SparkSession.builder.appName("cube-join").getOrCreate()
    calls_per_region(session, sys.argv[1]).show(truncate=False)
