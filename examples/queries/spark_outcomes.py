"""Call outcomes per day and type with Spark. Usage: spark-submit spark_outcomes.py LAKE (the --dest path)."""

import sys

from pyspark.sql import DataFrame, SparkSession, functions as F


def outcomes_per_day(spark: SparkSession, lake: str) -> DataFrame:
    return (
        spark.read.parquet(f"{lake}/call_outcomes")
        .groupBy("date", "campaign_id", "call_outcome__type")
        .agg(F.count(F.lit(1)).alias("calls"))
        .orderBy("date", "campaign_id", "call_outcome__type")
    )


if __name__ == "__main__":
    session = SparkSession.builder.appName("cube-outcomes").getOrCreate()
    outcomes_per_day(session, sys.argv[1]).show(truncate=False)
