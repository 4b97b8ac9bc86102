"""A job's Spark job group, set just before the job's first call into the JVM.

Spark keeps the job group in the local properties of a JVM thread, and PySpark pins each Python
thread to a JVM thread of its own, so the group is set from the job's thread: one py4j round trip.
To a JVM that has been idle since the last job, that round trip costs ~0.4 ms, a large part of a
short job's path, and a job that never touches Spark has no use for it.

So the group is set lazily: the job's thread notes its group, and the py4j client sends
``setJobGroup`` ahead of the first command that thread sends. Every Spark job a job starts from its
thread comes after some py4j command from it, so it runs in the group; a kill
(``cancelJobGroupAndFutureJobs``) cancels it as before, also when the kill comes first. Without a
py4j gateway (a stand-in for Spark), the group is set at once.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from py4j.java_gateway import GatewayClient
    from pyspark import SparkContext

INTERRUPT_ON_CANCEL = True


class JobGroups:
    def __init__(self, spark_context: SparkContext) -> None:
        self._spark_context = spark_context
        self._local = threading.local()
        client = getattr(getattr(spark_context, "_gateway", None), "_gateway_client", None)
        self._lazy = callable(getattr(client, "send_command", None))
        if self._lazy:
            _defer_to_first_command(client, spark_context, self._local)

    def enter(self, group_id: str, description: str) -> None:
        """The calling thread's Spark jobs from now on belong to ``group_id``."""
        if self._lazy:
            self._local.pending = (group_id, description)
        else:
            self._spark_context.setJobGroup(group_id, description, INTERRUPT_ON_CANCEL)

    def leave(self) -> None:
        """The calling thread's job ended: a group it never needed is not set."""
        self._local.pending = None


def _defer_to_first_command(
    client: GatewayClient, spark_context: SparkContext, local: threading.local
) -> None:
    send = client.send_command

    def send_command(*args: object, **kwargs: object) -> object:
        pending: tuple[str, str] | None = getattr(local, "pending", None)  # group id, description
        if pending is not None:
            local.pending = None  # setJobGroup's own command passes through here too
            try:
                spark_context.setJobGroup(pending[0], pending[1], INTERRUPT_ON_CANCEL)
            except BaseException:
                local.pending = pending
                raise
        return send(*args, **kwargs)

    # An attribute of this client object only: every py4j proxy (JavaObject, JavaMember, JVMView)
    # sends through its client's send_command.
    client.send_command = send_command
