"""Crash test (issue 3, section 5): ``kill -9`` the server during an ingest.

Each trial ingests 10,000 predictions (batches of 50-500, two sender threads, plain
httpx) plus a few label batches into a real ``assay serve`` on 127.0.0.1, and
``SIGKILL``s the server's process group at a seeded random moment of the ingest. A 2xx
answer means committed and durable, so after the crash:

* every acknowledged prediction and label is stored, exactly once (ids unique);
* every batch is all-or-nothing: the batches in flight at the kill are wholly present or
  wholly absent, batches never sent are absent, and stored values equal the sent ones;
* the server starts again cleanly on the same data directory;
* re-sending every batch of the trial (acknowledged or not) counts the stored ids as
  duplicates, never twice, and leaves exactly the distinct ids sent.

The state after the kill is checked on a copy of the dead server's files (opened in this
process), so the restarted server recovers from the untouched originals. Trials share
one data directory: trial ``i`` writes model version ``v<i>``, and each check also proves
the earlier trials' data intact. The server restarted after trial ``i`` is the one the
next trial kills.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

TENANT = "acme"
MODEL = "crash"
SPEC: dict[str, Any] = {
    "name": MODEL,
    "task": "binary",
    "features": {"amount": "numeric", "tenure": "numeric", "country": "categorical"},
    "segments": ["channel"],
}
# ASSAY_CRASH_TRIALS / ASSAY_CRASH_SEED: more trials or another seed when hunting a bug
TRIALS = max(10, int(os.environ.get("ASSAY_CRASH_TRIALS", "10")))
EVENTS_PER_TRIAL = 10_000
BATCH_SIZES = (50, 500)
LABEL_SIZES = (20, 150)
LABEL_EVERY = 4  # each sender sends a label batch after every 4th acknowledged batch
KEYED_EVERY = 3  # every 3rd batch of each kind carries an Idempotency-Key
SENDERS = 2
SEED = int(os.environ.get("ASSAY_CRASH_SEED", "20261126"))
KILL_JITTER = 0.04  # seconds between the trigger batch going out and the kill, at most
KILL_MARGIN = 10  # the trigger batch is at least this many batches before the end
START_TIMEOUT = 90.0
REQUEST_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
DB_FILES = ("assay.duckdb", "assay.duckdb.wal")
LOG_MARKERS = ("Traceback", "Error", "Exception", "WAL")

UNSENT, IN_FLIGHT, ACKED = "unsent", "in flight", "acknowledged"

ASSAY = Path(sys.executable).with_name("assay")


# -- the server process -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One ``assay serve`` subprocess in its own session (its pgid is its pid)."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if k not in ("ASSAY_STORE", "ASSAY_DATA_DIR")}
        env["PYTHONUNBUFFERED"] = "1"
        self._log = log_path.open("wb")
        command = [str(ASSAY), "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                   "--port", str(self.port)]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.pgid = self.proc.pid  # start_new_session: the child leads its own group
        self.launched = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        """Wait for /healthz and /readyz; seconds since launch (fails if the process exits)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                if not self.alive:
                    pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        ready = client.get("/readyz")
                        assert ready.status_code == 200, ready.text
                        return time.monotonic() - self.launched
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"server not healthy after {timeout:.0f} s:\n{self.log()}")
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server's process group and reap it."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM to the group), SIGKILL if that takes too long."""
        if self.alive:
            try:
                os.killpg(self.pgid, signal.SIGTERM)
                self.proc.wait(timeout=STOP_TIMEOUT)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def close(self) -> None:
        """Last resort cleanup: never leaves the process running."""
        try:
            self.kill()
        finally:
            self._log.close()


# -- what a trial sends -------------------------------------------------------------------


@dataclass
class Batch:
    """One request body and what became of it."""

    kind: str  # "predictions" or "labels"
    index: int
    values: dict[str, float]  # id -> score (predictions) or label (labels)
    body: bytes
    idem_key: str | None = None
    state: str = UNSENT
    answer: dict[str, Any] | None = None

    @property
    def ids(self) -> list[str]:
        return list(self.values)

    def headers(self) -> dict[str, str]:
        return {} if self.idem_key is None else {"Idempotency-Key": self.idem_key}

    @property
    def path(self) -> str:
        return f"/v1/models/{MODEL}/{self.kind}"


@dataclass
class Trial:
    """The batches of one trial and the outcome of its crash."""

    number: int
    rng: random.Random
    predictions: list[Batch]
    labels: list[Batch] = field(default_factory=list)
    kill_batch: int = 0
    kill_jitter: float = 0.0
    kill_time: float = 0.0
    wal_bytes_at_kill: int = 0
    stored_after_crash: int = 0
    labeled_after_crash: int = 0
    in_flight_present: int = 0
    in_flight_absent: int = 0
    resent_accepted: int = 0
    restart_seconds: float = 0.0
    check_seconds: float = 0.0
    resend_seconds: float = 0.0

    @property
    def version(self) -> str:
        return f"v{self.number}"

    @property
    def scores(self) -> dict[str, float]:
        return {i: s for b in self.predictions for i, s in b.values.items()}

    @property
    def label_values(self) -> dict[str, float]:
        return {i: v for b in self.labels for i, v in b.values.items()}

    def acknowledged(self, kind: str) -> int:
        batches = self.predictions if kind == "predictions" else self.labels
        return sum(len(b.values) for b in batches if b.state == ACKED)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _idem_key(trial: int, kind: str, index: int) -> str | None:
    keyed = index % KEYED_EVERY == KEYED_EVERY - 1
    return f"crash-{SEED}-t{trial}-{kind}{index}" if keyed else None


def plan_trial(number: int, now: datetime) -> Trial:
    """The seeded prediction batches of trial ``number`` (labels come during the ingest)."""
    rng = random.Random(SEED + number)
    batches: list[Batch] = []
    sent = 0
    while sent < EVENTS_PER_TRIAL:
        size = min(rng.randint(*BATCH_SIZES), EVENTS_PER_TRIAL - sent)
        events, values = [], {}
        for j in range(sent, sent + size):
            event_id = f"t{number:02d}-{j:05d}"
            score = round(rng.random(), 4)
            values[event_id] = score
            events.append(
                {
                    "id": event_id,
                    "version": f"v{number}",
                    "timestamp": _iso(now - timedelta(seconds=rng.uniform(0, 48 * 3600))),
                    "score": score,
                    "prediction": int(score >= 0.5),
                    "features": {
                        "amount": round(rng.lognormvariate(3.0, 0.8), 3),
                        "tenure": None if rng.random() < 0.1 else round(rng.gauss(24, 6), 2),
                        "country": rng.choice(["DE", "FR", "US"]),
                    },
                    "segments": {"channel": rng.choice(["app", "store", "web"])},
                }
            )
        index = len(batches)
        body = orjson.dumps({"events": events})
        batches.append(Batch("predictions", index, values, body, _idem_key(number, "p", index)))
        sent += size
    trial = Trial(number, rng, batches)
    trial.kill_batch = rng.randrange(0, len(batches) - KILL_MARGIN)
    trial.kill_jitter = rng.uniform(0.0, KILL_JITTER)
    return trial


# -- the ingest that gets killed ----------------------------------------------------------


class Ingest:
    """Sender threads that post the trial's batches until the server dies."""

    def __init__(self, server: Server, key: str, trial: Trial, now: datetime):
        self.server, self.key, self.trial, self.now = server, key, trial, now
        self.lock = threading.Lock()
        self.trigger = threading.Event()
        self.errors: list[str] = []
        self._next = 0
        self._unlabeled: list[str] = []
        self._acked_batches = 0
        self._scores = trial.scores
        self.threads = [
            threading.Thread(target=self._send_all, name=f"crash-sender-{n}", daemon=True)
            for n in range(SENDERS)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self.threads if t.is_alive()]
        assert not alive, f"sender threads did not finish: {alive}"

    def running(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def _take(self) -> Batch | None:
        with self.lock:
            if self.errors or self._next >= len(self.trial.predictions):
                return None
            batch = self.trial.predictions[self._next]
            self._next += 1
            return batch

    def _label_batch(self, acked: Batch) -> Batch | None:
        """Every LABEL_EVERY-th acknowledged batch: labels for acknowledged predictions."""
        with self.lock:
            self._unlabeled.extend(acked.ids)
            self._acked_batches += 1
            if self._acked_batches % LABEL_EVERY:
                return None
            rng = self.trial.rng
            size = min(rng.randint(*LABEL_SIZES), len(self._unlabeled))
            rng.shuffle(self._unlabeled)
            chosen, self._unlabeled = self._unlabeled[:size], self._unlabeled[size:]
            values = {i: float(rng.random() < self._scores[i]) for i in chosen}
            body = [
                {"id": i, "label": int(v), "timestamp": _iso(self.now)} for i, v in values.items()
            ]
            index = len(self.trial.labels)
            batch = Batch("labels", index, values, orjson.dumps({"labels": body}),
                          _idem_key(self.trial.number, "l", index))  # fmt: skip
            self.trial.labels.append(batch)
            return batch

    def _send_all(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=self.server.url, headers=headers,
                          timeout=REQUEST_TIMEOUT) as client:  # fmt: skip
            while (batch := self._take()) is not None:
                if batch.index == self.trial.kill_batch:
                    self.trigger.set()
                if not self._post(client, batch):
                    return
                labels = self._label_batch(batch)
                if labels is not None and not self._post(client, labels):
                    return

    def _post(self, client: httpx.Client, batch: Batch) -> bool:
        """Send once (again on 429/503); False once the server is gone or answered wrong."""
        while True:
            batch.state = IN_FLIGHT
            try:
                response = client.post(batch.path, content=batch.body, headers=batch.headers())
            except httpx.TransportError:
                return False  # killed: the batch may or may not be stored
            if response.status_code in (429, 503):
                time.sleep(min(float(response.headers.get("retry-after", "0.2")), 1.0))
                continue
            break
        if not response.is_success:
            with self.lock:
                self.errors.append(f"{batch.kind} batch {batch.index}: {response.status_code} "
                                   f"{response.text[:500]}")  # fmt: skip
            return False
        batch.answer = response.json()
        batch.state = ACKED
        expected = {"accepted": len(batch.values), "duplicates": 0}
        got = {k: batch.answer.get(k) for k in expected}
        if got != expected:
            with self.lock:
                self.errors.append(f"first send of {batch.kind} batch {batch.index} "
                                   f"answered {batch.answer}, expected {expected}")  # fmt: skip
        return True


def ingest_and_kill(server: Server, key: str, trial: Trial, data_dir: Path) -> None:
    """Run the ingest and SIGKILL the server once the trigger batch has gone out."""
    ingest = Ingest(server, key, trial, datetime.now(UTC))
    started = time.monotonic()
    ingest.start()
    try:
        deadline = started + 120.0
        while not ingest.trigger.wait(0.02):
            assert ingest.running(), f"ingest ended before the kill: {ingest.errors}"
            assert time.monotonic() < deadline, "the kill trigger never came"
        time.sleep(trial.kill_jitter)
        trial.kill_time = time.monotonic() - started
    finally:
        server.kill()  # always: a failed ingest must not leave the server running
    wal = data_dir / "assay.duckdb.wal"
    trial.wal_bytes_at_kill = wal.stat().st_size if wal.exists() else 0
    ingest.join(REQUEST_TIMEOUT + 10.0)
    assert not ingest.errors, "\n".join(ingest.errors)
    assert any(b.state != ACKED for b in trial.predictions), (
        f"trial {trial.number}: the kill came after the ingest finished"
    )


# -- checking what is stored --------------------------------------------------------------


@dataclass
class Snapshot:
    """Per version: id -> (score, label) of every stored prediction; idempotency records."""

    rows: dict[str, dict[str, tuple[float | None, float | None]]]
    answers: dict[str, dict[str, Any]]  # Idempotency-Key -> the answer stored with it

    def version(self, version: str) -> dict[str, tuple[float | None, float | None]]:
        return self.rows.get(version, {})


def read_store(data_dir: Path, trials: list[Trial]) -> Snapshot:
    """Open the DuckDB store in this process (the server must be dead) and scan it."""
    from assay.store import sql
    from assay.store.duckdb_store import DuckDBStore

    store = DuckDBStore(data_dir)
    try:
        assert store.schema_version() == sql.SCHEMA_VERSION
        assert store.get_model(TENANT, MODEL).name == MODEL
        assert [m.name for m in store.list_models(TENANT)] == [MODEL]
        table = store.scan(TENANT, MODEL)
        answers: dict[str, dict[str, Any]] = {}
        for trial in trials:
            for batch in [*trial.predictions, *trial.labels]:
                if batch.idem_key is not None:
                    seen = store.idempotent_answer(TENANT, batch.idem_key)
                    if seen is not None:
                        answers[batch.idem_key] = seen[1]
    finally:
        store.close()
    ids = table.column("id").to_pylist()
    counts: dict[str, int] = {}
    for event_id in ids:
        counts[event_id] = counts.get(event_id, 0) + 1
    repeated = {i: n for i, n in counts.items() if n > 1}
    assert not repeated, f"{len(repeated)} ids stored more than once, e.g. {list(repeated)[:5]}"
    rows: dict[str, dict[str, tuple[float | None, float | None]]] = {}
    columns = zip(ids, table.column("version").to_pylist(), table.column("score").to_pylist(),
                  table.column("label").to_pylist(), strict=True)  # fmt: skip
    for event_id, version, score, label in columns:
        rows.setdefault(version, {})[event_id] = (score, label)
    return Snapshot(rows, answers)


def copy_store(data_dir: Path, target: Path) -> Path:
    """Copy the (dead) server's DuckDB file and WAL, so checking them changes nothing."""
    target.mkdir()
    for name in DB_FILES:
        if (data_dir / name).exists():
            shutil.copy2(data_dir / name, target / name)
    return target


def _check_batches(
    snapshot: Snapshot, batches: list[Batch], stored: dict[str, float | None], where: str,
    complete: bool,
) -> None:  # fmt: skip
    """Each batch wholly stored or wholly absent, with the values sent and its key's record."""
    for batch in batches:
        present = [i for i in batch.ids if i in stored]
        what = f"{where}, {batch.kind} batch {batch.index} ({batch.state}, {len(batch.ids)} ids)"
        if complete or batch.state == ACKED:
            assert len(present) == len(batch.ids), f"{what}: only {len(present)} stored"
        elif batch.state == UNSENT:
            assert not present, f"{what}: never sent, yet {len(present)} stored"
        else:
            assert len(present) in (0, len(batch.ids)), f"{what}: half written, {len(present)}"
        wrong = [i for i in present if stored[i] != batch.values[i]]
        assert not wrong, f"{what}: stored values differ for {wrong[:5]}"
        if batch.idem_key is not None:
            recorded = snapshot.answers.get(batch.idem_key)
            assert (recorded is not None) == bool(present), (
                f"{what}: Idempotency-Key record {recorded} but {len(present)} events stored"
            )
            if recorded is not None:
                counts = (recorded.get("accepted"), recorded.get("duplicates"))
                assert counts == (len(batch.ids), 0), f"{what}: stored answer {recorded}"


def check_trial(snapshot: Snapshot, trial: Trial, *, complete: bool) -> tuple[set[str], set[str]]:
    """Batch-wise checks of one trial; the stored and the labeled ids of its version."""
    stored = snapshot.version(trial.version)
    where = f"trial {trial.number}"
    stray = stored.keys() - trial.scores.keys()
    assert not stray, f"{where}: {len(stray)} stored ids were never sent: {sorted(stray)[:5]}"
    scores = {i: score for i, (score, _) in stored.items()}
    _check_batches(snapshot, trial.predictions, scores, where, complete)
    labels = {i: label for i, (_, label) in stored.items() if label is not None}
    stray = labels.keys() - trial.label_values.keys()
    assert not stray, f"{where}: labels never sent are stored: {sorted(stray)[:5]}"
    _check_batches(snapshot, trial.labels, labels, where, complete)
    if complete:
        assert len(stored) == EVENTS_PER_TRIAL, f"{where}: {len(stored)} stored"
    return set(stored), set(labels)


def check_after_crash(copy: Path, done: list[Trial], trial: Trial) -> tuple[set[str], set[str]]:
    """The dead server's files: acknowledged events all there, batches all-or-nothing."""
    began = time.monotonic()
    snapshot = read_store(copy, [*done, trial])
    shutil.rmtree(copy, ignore_errors=True)
    for earlier in done:
        check_trial(snapshot, earlier, complete=True)
    stored, labeled = check_trial(snapshot, trial, complete=False)
    trial.stored_after_crash, trial.labeled_after_crash = len(stored), len(labeled)
    unknown = [b for b in trial.predictions if b.state == IN_FLIGHT]
    trial.in_flight_present = sum(1 for b in unknown if b.ids[0] in stored)
    trial.in_flight_absent = len(unknown) - trial.in_flight_present
    known = {v: len(ids) for v, ids in snapshot.rows.items()}
    assert set(known) <= {t.version for t in [*done, trial]}, f"unexpected versions: {known}"
    trial.check_seconds = time.monotonic() - began
    return stored, labeled


# -- the API after the restart ------------------------------------------------------------


def _client(server: Server, key: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT)


def version_counts(client: httpx.Client) -> dict[str, int]:
    response = client.get(f"/v1/models/{MODEL}/versions")
    assert response.status_code == 200, response.text
    return {v["version"]: v["predictions"] for v in response.json()["versions"]}


def resend_and_check(server: Server, key: str, done: list[Trial], trial: Trial,
                     before: tuple[set[str], set[str]]) -> None:  # fmt: skip
    """Re-send every batch: stored ids count as duplicates; the rest lands exactly once."""
    stored, labeled = before
    began = time.monotonic()
    with _client(server, key) as client:
        model = client.get(f"/v1/models/{MODEL}")
        assert model.status_code == 200, model.text
        counts = version_counts(client)
        expected = {t.version: EVENTS_PER_TRIAL for t in done}
        if stored:
            expected[trial.version] = len(stored)
        assert counts == expected, "the restarted server sees other counts than the files"
        for batch, seen in [*((b, stored) for b in trial.predictions),
                            *((b, labeled) for b in trial.labels)]:  # fmt: skip
            what = f"re-send of {batch.kind} batch {batch.index} ({batch.state})"
            duplicates = sum(1 for i in batch.ids if i in seen)
            if batch.idem_key is not None:
                # same key and body: the first answer again (stored with the batch), or,
                # if the batch never landed, a first answer now; either way all accepted
                answer = _post_ok(client, batch, batch.headers())
                assert _counts(answer, batch, len(batch.ids), 0), f"{what}, keyed: {answer}"
                duplicates = len(batch.ids)  # without the key: all stored by now
            answer = _post_ok(client, batch, {})
            assert _counts(answer, batch, len(batch.ids) - duplicates, duplicates), (
                f"{what}: {answer}"
            )
            if batch.kind == "predictions":
                trial.resent_accepted += len(batch.ids) - sum(1 for i in batch.ids if i in seen)
        expected[trial.version] = EVENTS_PER_TRIAL
        assert version_counts(client) == expected
    assert trial.resent_accepted + len(stored) == EVENTS_PER_TRIAL
    trial.resend_seconds = time.monotonic() - began


def _post_ok(client: httpx.Client, batch: Batch, headers: dict[str, str]) -> dict[str, Any]:
    response = client.post(batch.path, content=batch.body, headers=headers)
    assert response.status_code == 200, f"{batch.kind} batch {batch.index}: {response.text}"
    answer: dict[str, Any] = response.json()
    return answer


def _counts(answer: dict[str, Any], batch: Batch, accepted: int, duplicates: int) -> bool:
    want = {"accepted": accepted, "duplicates": duplicates}
    if batch.kind == "labels":
        want["unmatched"] = 0
    return {k: answer.get(k) for k in want} == want


def check_clean_log(server: Server) -> None:
    """No traceback or storage error in the restarted server's output."""
    text = server.log()
    lines = [line for line in text.splitlines() if " serving on http://" not in line]
    bad = [line for line in lines if any(m in line for m in LOG_MARKERS)]
    assert not bad, f"the restarted server logged errors:\n{text}"


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def admin_key(data_dir: Path) -> str:
    """An admin key of tenant acme, made with ``assay keys create`` (in process as fallback)."""
    command = [str(ASSAY), "keys", "create", "--data-dir", str(data_dir), "--tenant", TENANT,
               "--role", "admin"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines and lines[-1].strip():
            return lines[-1].strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    from assay.control import open_control_store

    with open_control_store(data_dir) as control:
        _, token = control.create_key(TENANT, "admin", actor="test")
    return str(token)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server a test starts; whatever happens, none outlives the test."""
    started: list[Server] = []
    try:
        yield started
    finally:
        for server in started:
            server.close()


# -- the test -----------------------------------------------------------------------------


def _summary(trials: list[Trial], elapsed: float) -> str:
    lines = [
        "trial  acked_pred  acked_batches  kill_s  kill_at   stored  in_flight(+/-)  "
        "acked_lab  stored_lab  wal_kB  restart_s  check_s  resend_s  resent_new",
    ]
    for t in trials:
        acked_batches = sum(1 for b in t.predictions if b.state == ACKED)
        lines.append(
            f"{t.number:5d}  {t.acknowledged('predictions'):10d}  "
            f"{acked_batches:6d}/{len(t.predictions):<6d}  {t.kill_time:6.3f}  "
            f"{'batch ' + str(t.kill_batch):<8}  {t.stored_after_crash:6d}  "
            f"{t.in_flight_present:7d}/{t.in_flight_absent:<6d}  {t.acknowledged('labels'):9d}  "
            f"{t.labeled_after_crash:10d}  {t.wal_bytes_at_kill / 1024:6.0f}  "
            f"{t.restart_seconds:9.2f}  {t.check_seconds:7.2f}  {t.resend_seconds:8.2f}  "
            f"{t.resent_accepted:10d}"
        )
    lines.append(f"{len(trials)} trials in {elapsed:.1f} s")
    return "\n".join(lines)


def test_kill9_during_ingest_keeps_every_acknowledged_event_once(
    tmp_path: Path, data_dir: Path, admin_key: str, servers: list[Server]
) -> None:
    started = time.monotonic()
    logs = tmp_path / "logs"
    logs.mkdir()

    def launch(name: str) -> Server:
        server = Server(data_dir, logs / f"{name}.log")
        servers.append(server)
        return server

    server = launch("first")
    server.wait_ready()
    with _client(server, admin_key) as client:
        response = client.post("/v1/models", content=orjson.dumps(SPEC))
        assert response.status_code == 201, response.text

    done: list[Trial] = []
    begun: list[Trial] = []  # for the summary, with a failed trial's partial outcome
    now = datetime.now(UTC)
    try:
        for number in range(TRIALS):
            trial = plan_trial(number, now)
            begun.append(trial)
            ingest_and_kill(server, admin_key, trial, data_dir)
            assert server.proc.returncode == -signal.SIGKILL, server.proc.returncode
            # copy the dead server's files, restart on the originals, check the copy meanwhile
            copy = copy_store(data_dir, tmp_path / f"copy-{number}")
            server = launch(f"restart-{number}")
            before = check_after_crash(copy, done, trial)
            trial.restart_seconds = server.wait_ready()
            resend_and_check(server, admin_key, done, trial, before)
            check_clean_log(server)
            done.append(trial)

        server.stop()
        final = read_store(data_dir, done)
        for trial in done:
            check_trial(final, trial, complete=True)
        assert sum(len(ids) for ids in final.rows.values()) == TRIALS * EVENTS_PER_TRIAL
    finally:
        print("\n" + _summary(begun, time.monotonic() - started))  # shown with -s or on failure
