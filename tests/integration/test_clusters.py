"""Contexts and ad-hoc jobs on named clusters: each driver gets its cluster's environment, and
GET /clusters shows which contexts run where (stand-in drivers, no JVM)."""

from __future__ import annotations

from pathlib import Path

from tests.support import FAKE_SPARK_HOMES, Api, processes_mentioning, running_server, wait_until

LIGHT = str(FAKE_SPARK_HOMES / "light")
CLUSTERS = {
    "spark.home": LIGHT,
    "spark.jobserver.clusters": {
        "east": {"env": {"HADOOP_CONF_DIR": "/etc/hadoop/east"}},
        "west": {"env": {"HADOOP_CONF_DIR": "/etc/hadoop/west"}, "default-settings": {"num-cpu-cores": 3}},
    },
}
ECHO = "/jobs?appName=examples&classPath=example_jobs.echo.EchoJob&sync=true"


def driver_environment(context_id: str) -> dict[str, str]:
    (pid, *_) = processes_mentioning(context_id)
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


async def test_contexts_run_on_the_cluster_they_name_with_its_environment(tmp_path: Path) -> None:
    async with running_server(tmp_path, CLUSTERS) as api:
        assert (await api.call("POST", "/contexts/reports"))[0] == 200
        assert (await api.call("POST", "/contexts/etl?cluster=west"))[0] == 200
        _, reports, _ = await api.call("GET", "/contexts/reports")
        _, etl, _ = await api.call("GET", "/contexts/etl")
        assert driver_environment(reports["id"])["HADOOP_CONF_DIR"] == "/etc/hadoop/east"
        assert driver_environment(etl["id"])["HADOOP_CONF_DIR"] == "/etc/hadoop/west"
        status, listed, _ = await api.call("GET", "/clusters")
        assert status == 200
        assert [(c["name"], c["default"], c["contexts"]) for c in listed] == [
            ("east", True, ["reports"]),
            ("west", False, ["etl"]),
        ]
        assert (await api.call("DELETE", "/contexts/etl"))[0] == 200
        assert (await api.call("GET", "/clusters"))[1][1]["contexts"] == []


async def test_an_unknown_cluster_is_a_400_naming_the_clusters_before_any_launch(tmp_path: Path) -> None:
    async with running_server(tmp_path, CLUSTERS) as api:
        status, body, _ = await api.call("POST", "/contexts/lost?cluster=north")
        assert (status, body) == (
            400,
            {"status": "ERROR", "result": "Unknown cluster north; the clusters are: east, west"},
        )
        assert not processes_mentioning(str(tmp_path))
        status, body, _ = await api.call("POST", "/jobs?classPath=x&appName=y&context=a&cluster=west")
        assert status == 400 and body["result"].startswith("cluster is for ad-hoc jobs")


async def test_an_ad_hoc_job_runs_on_the_cluster_it_names(tmp_path: Path) -> None:
    async with running_server(tmp_path, CLUSTERS) as api:
        await api.upload("examples")
        status, answer, _ = await api.call("POST", f"{ECHO}&cluster=west", data='{"input": "west"}')
        assert (status, answer["result"]) == (200, "west")
        _, config, _ = await api.call("GET", f"/jobs/{answer['jobId']}/config")
        assert config["spark"]["context-settings"]["cluster"] == "west"
        _, listed, _ = await api.call("GET", "/clusters")
        assert [len(cluster["contexts"]) for cluster in listed] in ([0, 1], [0, 0])  # ending, or ended
        await assert_ad_hoc_contexts_ended(api)


async def assert_ad_hoc_contexts_ended(api: Api) -> None:
    async def none_listed() -> bool:
        _, listed, _ = await api.call("GET", "/clusters")
        return all(not cluster["contexts"] for cluster in listed)

    await wait_until(none_listed, what="the ad-hoc context to end")
