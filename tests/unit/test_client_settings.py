"""Which context settings clients may set, with the defaults conf/defaults.conf ships."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobserver.common.config import expand_dotted, load_settings
from jobserver.common.errors import Forbidden
from jobserver.contexts.client_settings import ClientSettingsPolicy


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> ClientSettingsPolicy:
    settings = load_settings(None, {"spark.jobserver.work-dir": str(tmp_path_factory.mktemp("work"))})
    return ClientSettingsPolicy(
        allowed=settings.client_settings_allowed, denied=settings.client_settings_denied
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"num-cpu-cores": 2, "memory-per-node": "2g"},
        {"spark.executor.cores": 1, "spark.sql.shuffle.partitions": 8, "spark.ui.enabled": True},
        {
            "context-factory": "spark.jobserver.context.StreamingContextFactory",
            "streaming.batch_interval": 500,
        },
        {"launcher.spark.driver.memory": "2g", "launcher.spark.driver.supervise": True},
        {"passthrough.spark.executor.memory": "1g", "hadoop.fs.defaultFS": "hdfs://nn:8020"},
        {"dependent-jar-uris": ["hdfs://nn/jars/a.jar"], "stop-context-on-job-error": True},
    ],
)
def test_resource_and_harmless_spark_settings_are_allowed(
    policy: ClientSettingsPolicy, settings: dict
) -> None:
    policy.check(expand_dotted(settings))


@pytest.mark.parametrize(
    "key",
    [
        "launcher.spark.master",
        "spark.master",
        "launcher.properties-file",
        "launcher.verbose",
        "spark.driver.extraJavaOptions",
        "launcher.spark.driver.extraJavaOptions",
        "passthrough.spark.executor.extraJavaOptions",
        "spark.executorEnv.LD_PRELOAD",
        "spark.yarn.appMasterEnv.PATH",
        "spark.proxy.user",
        "spark.pyspark.python",
        "spark.plugins",
        "spark.sql.extensions",
        "spark.driver.resource.gpu.discoveryScript",
        "spark.kerberos.keytab",
        "unknown-setting",
    ],
)
def test_settings_that_run_code_or_change_the_master_or_user_are_refused(
    policy: ClientSettingsPolicy, key: str
) -> None:
    with pytest.raises(Forbidden, match=f"Context setting {key} may not be set by clients") as raised:
        policy.check(expand_dotted({key: "x"}))
    assert raised.value.http_status == 403


def test_an_operator_may_allow_more(tmp_path: Path) -> None:
    ClientSettingsPolicy(allowed=["*"], denied=[]).check({"launcher": {"verbose": True}})
