"""CubeExtractStatusSensor: waits until a destination holds every day of a range
(`cube-extract status --expect-from/--expect-to`), e.g. before a downstream model runs."""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from cube_extract.airflow._compat import AirflowFailException, BaseSensorOperator
from cube_extract.airflow.operators import WHY_NOT_RETRIED, binary, run_binary


class CubeExtractStatusSensor(BaseSensorOperator):
    """Pokes `cube-extract status --dest DEST --expect-from FROM --expect-to TO --json` until every
    day of the range is committed (exit 0); exit 1 means not yet. A usage error (exit 2) or a missing
    binary (126, 127) fails the task at once. The poke's XCom is the status JSON.

    :param table: the table to check, as `status --table` names it (`call-outcomes`, the default, `customers`, ...).
    """

    template_fields: Sequence[str] = ("dest", "expect_from", "expect_to")

    def __init__(self, *, dest: str, expect_from: str, expect_to: str | None = None, table: str | None = None,
                 extra_args: Sequence[str] = (), binary: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dest = dest
        self.expect_from = expect_from
        self.expect_to = expect_to
        self.table = table
        self.extra_args = list(extra_args)
        self.binary = binary

    def poke(self, context) -> bool:
        command = [binary(self.binary), "status", "--dest", self.dest, "--json", "--expect-from", self.expect_from,
                   "--expect-to", self.expect_to or self.expect_from, *self.extra_args]
        if self.table:
            command += ["--table", self.table]
        code, stdout = run_binary(command, dict(os.environ), self.log)
        if code in WHY_NOT_RETRIED:
            raise AirflowFailException(f"cube-extract status exited {code}: {WHY_NOT_RETRIED[code]}")
        if code not in (0, 1):
            self.log.warning("cube-extract status exited %s; poking again later", code)
            return False
        try:
            held = json.loads(stdout)
        except json.JSONDecodeError:
            return False
        complete = bool(held.get("expected", {}).get("complete")) and code == 0
        self.log.info("%s to %s: %s", self.expect_from, self.expect_to or self.expect_from,
                      "complete" if complete else f"missing {held.get('expected', {}).get('missing')}")
        return complete
