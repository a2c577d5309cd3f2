"""Data sets on S3: ``s3://`` folders, globs and files through pyarrow's S3 client.

The tests start an S3-compatible server on the loopback (moto's standalone server, from
the ``test`` extra) and upload Parquet files to it over HTTP; Assay then reads them as a
user's code would read a bucket: the local engine, the CLI (``assay evaluate`` and
``assay gate``) and the Ray engine in a runtime of its own. Numbers are checked against
scikit-learn and scipy on the uploaded tables. This is not AWS itself: signing, regions
and IAM are the server's to enforce, and this one accepts any key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import accuracy_score, roc_auc_score

import assay
from assay.errors import InputError

from .conftest import free_port, serving

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "assay-test", "AWS_SECRET_ACCESS_KEY": "assay-test",
               "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of an S3-compatible server started (and stopped) here."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log = tmp_path_factory.mktemp("s3") / "server.log"
    with serving(command, port, log, "the S3 test server"):
        yield f"127.0.0.1:{port}"


def _window(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int8)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.4 * y - 1.0)))
    return pa.table({"target": y, "score": score, "channel": rng.choice(["web", "app"], n),
                     "amount": rng.lognormal(3 + shift, 1.0, n)})  # fmt: skip


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> dict[str, Any]:
    """Two days of two files each, and a reference file, uploaded to bucket ``logs``."""
    s3 = pafs.S3FileSystem(access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                           secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region="us-east-1",
                           endpoint_override=s3_endpoint, scheme="http",
                           allow_bucket_creation=True)  # fmt: skip
    s3.create_dir("logs")
    days: dict[str, pa.Table] = {}
    for day in ("01", "02"):
        parts = [_window(3_000, seed=int(day) * 10 + i, shift=0.3 * int(day)) for i in range(2)]
        for i, part in enumerate(parts):
            pq.write_table(part, f"logs/fraud/2026-11-{day}/part-{i}.parquet", filesystem=s3,
                           row_group_size=1_000)  # fmt: skip
        days[day] = pa.concat_tables(parts)
    reference = _window(4_000, seed=99)
    pq.write_table(reference, "logs/fraud/ref/reference.parquet", filesystem=s3)
    return {"days": days, "reference": reference, "endpoint": s3_endpoint}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, bucket: dict[str, Any]) -> dict[str, str]:
    """Credentials and the endpoint as the AWS SDK reads them from the environment."""
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://{bucket['endpoint']}"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _evaluate(*args: Any, **kwargs: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return assay.evaluate(*args, **kwargs).to_dict()


ARGS: dict[str, Any] = {"task": "binary", "target": "target", "score": "score",
                        "segments": ["channel"]}  # fmt: skip


@pytest.mark.parametrize(
    ("uri", "days"),
    [("s3://logs/fraud/2026-11-01/", ["01"]),
     ("s3://logs/fraud/2026-11-0*/*.parquet", ["01", "02"]),
     ("s3://logs/fraud/2026-11-02/part-1.parquet", None)],
)  # fmt: skip
def test_the_local_engine_reads_a_folder_a_glob_and_a_file_on_s3(
    uri: str, days: list[str] | None, bucket: dict[str, Any], aws_env: dict[str, str]
) -> None:
    result = _evaluate(uri, reference="s3://logs/fraud/ref/", **ARGS)
    if days is None:  # one file: the second half of day 2
        table = bucket["days"]["02"].slice(3_000)
    else:
        table = pa.concat_tables([bucket["days"][d] for d in days])
    y, score = table.column("target").to_numpy(), table.column("score").to_numpy()
    assert result["rows"] == {"current": table.num_rows, "reference": 4_000}
    overall = result["metrics"]["overall"]
    assert overall["roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert overall["accuracy"] == pytest.approx(accuracy_score(y, score >= 0.5), abs=1e-12)
    web = np.asarray(table.column("channel")) == "web"
    assert result["metrics"]["by_segment"]["channel"]["web"]["roc_auc"] == pytest.approx(
        roc_auc_score(y[web], score[web]), abs=1e-12
    )
    ks = ks_2samp(
        bucket["reference"].column("amount").to_numpy(), table.column("amount").to_numpy()
    )
    assert result["drift"]["amount"]["ks"]["statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    assert result["drift"]["amount"]["ks"]["p_value"] == pytest.approx(ks.pvalue, rel=1e-9)
    assert len(result["run"]["inputs"]["current"]["fingerprint"]) == 16


def test_a_missing_bucket_or_prefix_is_an_input_error(aws_env: dict[str, str]) -> None:
    for uri in ("s3://logs/fraud/2026-12-01/", "s3://nobucket/fraud/"):
        with pytest.raises(InputError, match="does not exist") as caught:
            assay.evaluate(uri, **ARGS)
        assert caught.value.field == "current"
    with pytest.raises(InputError, match="holds no Parquet files"):
        assay.evaluate("s3://logs/fraud/2026-11-0*/*.csv", **ARGS)


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assay.cli.main", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env}, cwd=cwd)  # fmt: skip


def test_the_cli_takes_s3_uris_with_the_endpoint_in_the_query(
    bucket: dict[str, Any], tmp_path: Path
) -> None:
    """``assay evaluate`` and ``assay gate`` pass a URI through as given (a path type would
    fold ``s3://`` into ``s3:/``); the endpoint is in the URI's query, as for MinIO."""
    query = f"?endpoint_override={bucket['endpoint']}&scheme=http"
    day1, day2 = (f"s3://logs/fraud/2026-11-{d}/*.parquet{query}" for d in ("01", "02"))
    done = _cli("evaluate", "--current", day2, "--reference", day1, "--task", "binary",
                "--target", "target", "--score", "score", "--json", "out.json", "--quiet",
                env=CREDENTIALS, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "out.json").read_text())
    table = bucket["days"]["02"]
    y, score = table.column("target").to_numpy(), table.column("score").to_numpy()
    assert result["metrics"]["overall"]["roc_auc"] == pytest.approx(roc_auc_score(y, score))
    assert result["rows"] == {"current": 6_000, "reference": 6_000}
    done = _cli("gate", "--baseline", day1, "--candidate", day2, "--task", "binary",
                "--target", "target", "--score", "score", "--metric", "roc_auc",
                "--margin", "0.5", "--json", "gate.json",
                env=CREDENTIALS, cwd=tmp_path)  # fmt: skip
    assert done.returncode in (0, 1, 3), done.stderr[-2000:]
    decision = json.loads((tmp_path / "gate.json").read_text())
    [check] = [c for c in decision["checks"] if c.get("metric") == "roc_auc"]
    base = bucket["days"]["01"]
    assert check["baseline"] == pytest.approx(
        roc_auc_score(base.column("target").to_numpy(), base.column("score").to_numpy())
    )
    assert check["candidate"] == pytest.approx(roc_auc_score(y, score))


def test_the_ray_engine_reads_s3_with_exactly_the_local_answer(
    bucket: dict[str, Any], aws_env: dict[str, str], tmp_path: Path
) -> None:
    """In a process of its own, whose local Ray runtime's workers get the credentials from
    the environment, as a cluster's nodes would; the endpoint travels in the URI."""
    query = f"?endpoint_override={bucket['endpoint']}&scheme=http"
    uri = f"s3://logs/fraud/2026-11-0*/*.parquet{query}"
    code = (
        "import json, sys, warnings, assay; warnings.simplefilter('ignore');"
        f"r = assay.evaluate({uri!r}, reference={'s3://logs/fraud/ref/' + query!r},"
        " task='binary', target='target', score='score', segments=['channel'], engine='ray',"
        " ray_options={'partitions': 5});"
        "json.dump(r.to_dict(), sys.stdout)"
    )
    env = {**os.environ, **CREDENTIALS, "RAY_AUTH_MODE": "disabled"}
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    on_ray = json.loads(done.stdout)
    assert on_ray["run"]["engine"] == "ray"
    assert on_ray["run"]["ray"]["windows"]["current"]["partitions"] >= 4
    local = _evaluate("s3://logs/fraud/2026-11-0*/*.parquet", reference="s3://logs/fraud/ref/",
                      **ARGS)  # fmt: skip
    local = json.loads(json.dumps(local))
    for key in ("rows", "labeled", "metrics", "drift"):
        assert on_ray[key] == local[key], key
    table = pa.concat_tables(list(bucket["days"].values()))
    assert on_ray["metrics"]["overall"]["roc_auc"] == pytest.approx(
        roc_auc_score(table.column("target").to_numpy(), table.column("score").to_numpy())
    )
