"""The Airflow provider of cube-extract (`pip install 'cube-extract[airflow]'`): CubeExtractOperator,
CubeExtractStatusSensor and the `cube` connection type, for Airflow 2.11 and 3.x.

Airflow finds it through the `apache_airflow_provider` entry point, which names `get_provider_info`.
"""

from __future__ import annotations


def get_provider_info() -> dict:
    """What `airflow providers list` shows, and the connection type the UI offers."""
    from importlib.metadata import version

    return {
        "package-name": "cube-extract",
        "name": "Headshed Cube (cube-extract)",
        "description": "Copies Headshed Cube into Parquet or Delta Lake tables on local disk or S3.",
        "versions": [version("cube-extract")],
        "connection-types": [
            {"hook-class-name": "cube_extract.airflow.hooks.CubeHook", "connection-type": "cube"},
        ],
        "hooks": [{"integration-name": "Headshed Cube", "python-modules": ["cube_extract.airflow.hooks"]}],
        "operators": [{"integration-name": "Headshed Cube", "python-modules": ["cube_extract.airflow.operators"]}],
        "sensors": [{"integration-name": "Headshed Cube", "python-modules": ["cube_extract.airflow.sensors"]}],
        "integrations": [{"integration-name": "Headshed Cube", "tags": ["software"]}],
    }
