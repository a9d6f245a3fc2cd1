"""Where Airflow 3 (the task SDK) and Airflow 2.11 keep what the provider uses."""

from __future__ import annotations

try:  # Airflow 3
    from airflow.sdk import Asset as Outlet
    from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowNotFoundException

    AIRFLOW_3 = True
except ImportError:  # Airflow 2.11
    from airflow.datasets import Dataset as Outlet  # type: ignore[no-redef]
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
    )
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    from airflow.models import BaseOperator  # type: ignore[no-redef]
    from airflow.sensors.base import BaseSensorOperator  # type: ignore[no-redef]

    AIRFLOW_3 = False

__all__ = ["AIRFLOW_3", "AirflowException", "AirflowFailException", "AirflowNotFoundException", "BaseHook", "BaseOperator",
           "BaseSensorOperator", "Outlet"]
