"""`batch --engine ray` and `promptzip.ray` against a real Ray (issue 37): a local Ray and a
two-node cluster on this machine, both on loopback only. No mocks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported (promptzip.ray.loopback_only)
ray = pytest.importorskip("ray", reason="Ray is not installed (`pip install 'promptzip-cli[ray]'`; make test has it)")

from promptzip.batch import REPORT_NAME, BatchSettings, load_journal, run_batch  # noqa: E402
from promptzip.context import Request  # noqa: E402

from .conftest import DEMO  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _listening() -> set[str]:
    """Listening TCP addresses (`ss -ltn`); empty where iproute2 is not installed (the check then proves
    nothing, and says so by skipping nothing else)."""
    if shutil.which("ss") is None:
        return set()
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    return {line.split()[3] for line in out.splitlines() if line.strip()}


def _beyond_loopback(addresses: set[str]) -> set[str]:
    """Listening addresses that are not loopback (127.0.0.0/8, ::1, or IPv4 loopback mapped into v6)."""
    return {a for a in addresses if not a.startswith(("127.", "[::1]", "[::ffff:127.", "localhost"))}


def _folder(root: Path) -> Path:
    src = root / "src"
    (src / "sub").mkdir(parents=True)
    shutil.copy(DEMO, src / "incident-report.md")
    (src / "notes.txt").write_text("The pool shrank from 64 to 32 connections at 18:02 after the deploy. "
                                   "Latency rose to 900 ms and the on-call engineer rolled back at 18:40. " * 6)
    (src / "sub" / "data.json").write_text(json.dumps({"items": [{"id": i, "title": f"Item number {i} of the "
                                                                   "list, with a long description"} for i in range(30)]}))
    (src / "sub" / "rows.csv").write_text("id,name,city\n" + "".join(f"{i},name {i},city {i % 7}\n" for i in range(80)))
    (src / "sub" / "tool.py").write_text("import os\n\n\ndef main(path):\n    # read it\n    with open(path) as f:\n"
                                         "        return f.read()\n\n\nif __name__ == '__main__':\n    main(os.sys.argv[1])\n")
    (src / "sub" / "broken.txt").write_bytes(b"\x00\x01binary\x00")
    return src


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith("promptzip-")}


@pytest.fixture(scope="module")
def local_ray():
    before = _listening()
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, configure_logging=False,
             log_to_driver=False)
    try:
        yield before
    finally:
        ray.shutdown()


def test_ray_engine_matches_the_local_engine_byte_for_byte(local_ray, tmp_path):
    src = _folder(tmp_path)
    settings = BatchSettings(request=Request(ratio=0.4))
    local = run_batch(src, tmp_path / "local", settings, jobs=1)
    via_ray = run_batch(src, tmp_path / "ray", settings, jobs=2, engine="ray")
    assert via_ray.total == local.total == 6
    assert via_ray.failed == local.failed == 1 and via_ray.failures[0]["path"] == "sub/broken.txt"
    assert _outputs(tmp_path / "ray") == _outputs(tmp_path / "local") and len(_outputs(tmp_path / "ray")) == 5
    assert via_ray.input_tokens == local.input_tokens and via_ray.output_tokens == local.output_tokens
    journal = load_journal(tmp_path / "ray" / REPORT_NAME)
    assert {r.get("node") for r in journal.values() if r["status"] == "ok"} == {ray.get_runtime_context().get_node_id()}
    again = run_batch(src, tmp_path / "ray", settings, jobs=2, engine="ray")
    assert again.up_to_date == 5 and again.compressed == 0 and again.failed == 1  # only the broken file again
    # nothing of Ray listens beyond loopback
    assert not _beyond_loopback(_listening() - local_ray)


def test_datasets_keep_ids_and_metadata_and_compress_dataset_fits_a_pipeline(local_ray, tmp_path):
    import pandas as pd

    import promptzip.ray as pz

    text = DEMO.read_text(encoding="utf-8")
    paras = [p for p in text.split("\n\n") if len(p.split()) > 25 and p[0] not in "|`#-"][:6]
    frame = pd.DataFrame({"id": [f"doc-{i}" for i in range(len(paras))], "text": paras,
                          "source": ["demo"] * len(paras), "question": ["When did the pool shrink?"] * len(paras)})
    frame.to_parquet(tmp_path / "in.parquet")
    ds = ray.data.read_parquet(str(tmp_path / "in.parquet"))
    ds = pz.compress_dataset(ds, column="text", ratio=0.5, query_column="question")
    ds.write_parquet(str(tmp_path / "out"))
    got = pd.read_parquet(tmp_path / "out").sort_values("id").reset_index(drop=True)
    assert got["id"].tolist() == frame["id"].tolist() and set(got["source"]) == {"demo"}
    assert (got["error"] == "").all() and (got["compressed"].str.len() > 0).all()
    assert ((got["ratio"] > 0.3) & (got["ratio"] < 0.6)).all()
    assert (got["output_tokens"] < got["input_tokens"]).all()
    # the same through the command line, JSON Lines out
    from typer.testing import CliRunner

    from promptzip.cli import app

    res = CliRunner().invoke(app, ["batch", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.jsonl"),
                                   "--engine", "ray", "-r", "0.5", "--query-column", "question"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == frame["id"].tolist() and all(r["compressed"] for r in rows)
    bad = CliRunner().invoke(app, ["batch", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o2.jsonl"),
                                   "--engine", "ray", "--column", "body"])
    assert bad.exit_code == 2 and "no column 'body'" in bad.output


def test_a_two_node_cluster_shares_the_work_and_a_killed_worker_loses_nothing(tmp_path, monkeypatch):
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the GCS is looked up at 127.0.0.1
    before = _listening()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                           "include_dashboard": False})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    try:
        ray.init(address=cluster.address)
        cluster.wait_for_nodes()
        src = tmp_path / "src"
        src.mkdir()
        base = DEMO.read_text(encoding="utf-8")
        for i in range(16):
            (src / f"doc{i:02d}.md").write_text(f"# Report {i}\n\n" + base, encoding="utf-8")
        settings = BatchSettings(request=Request(ratio=0.33))
        summary = run_batch(src, tmp_path / "out", settings, jobs=2, engine="ray")
        assert summary.compressed == 16 and summary.failed == 0
        nodes = {r["node"] for r in load_journal(tmp_path / "out" / REPORT_NAME).values()}
        assert len(nodes) == 2, nodes  # both nodes did work
        assert not _beyond_loopback(_listening() - before)

        # a worker killed mid-run: what finished is kept, the re-run does the rest, once each
        out2 = tmp_path / "out2"
        import threading

        killed: list[int] = []

        def kill_a_worker() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                journal = out2 / REPORT_NAME
                if journal.is_file() and journal.read_text().count("\n") >= 3:
                    pids = {r.get("worker_pid") for r in load_journal(journal).values()} - {None}
                    for pid in pids:
                        try:
                            os.kill(pid, 9)
                            killed.append(pid)
                            return
                        except ProcessLookupError:
                            continue
                    return
                time.sleep(0.1)

        killer = threading.Thread(target=kill_a_worker)
        killer.start()
        try:
            run_batch(src, out2, settings, jobs=2, engine="ray")
        except Exception:  # the run may end with the killed actor's items failed
            pass
        killer.join()
        assert killed, "no worker was running to be killed"
        first = load_journal(out2 / REPORT_NAME)
        assert 3 <= sum(r["status"] == "ok" for r in first.values())
        final = run_batch(src, out2, settings, jobs=2, engine="ray")
        assert final.failed == 0 and final.total == 16
        assert _outputs(out2) == _outputs(tmp_path / "out")  # nothing lost, every output whole
        lines = [json.loads(line) for line in (out2 / REPORT_NAME).read_text().splitlines() if line.strip()]
        ok = [r["path"] for r in lines if r.get("status") == "ok"]
        assert sorted(set(ok)) == sorted(f"doc{i:02d}.md" for i in range(16))
        assert len(ok) == len(set(ok))  # no item was compressed twice
    finally:
        ray.shutdown()
        cluster.shutdown()
