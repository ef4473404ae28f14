"""Ratings store, exports, HF sync and CLI: validation, replacement, concurrency, migrations."""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing as mp
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from pipelines.core.settings import Settings
from pipelines.feedback import __main__ as cli
from pipelines.feedback.errors import FilterError, RatingError, SchemaError
from pipelines.feedback.export import (
    TRAINING_COLUMNS,
    export_csv,
    export_jsonl,
    training_rows,
)
from pipelines.feedback.records import RatingRecord, image_sha256
from pipelines.feedback.schema import MIGRATIONS, SCHEMA_VERSION
from pipelines.feedback.store import FeedbackStore, RecordFilter
from pipelines.feedback.sync import FeedbackSync, SyncConfigError, read_log, start_sync

METHODS = ("raw", "template", "learned", "inversion", "ensemble")


def row(cid, rater, ratings, best=None, **kw) -> list[RatingRecord]:
    """One rater's submission for one comparison row: {method: rating}."""
    base = {"style": "watercolor", "seed": 7, "base_prompt": "a portrait", **kw}
    return [
        RatingRecord(
            rater=rater,
            comparison_id=cid,
            method=m,
            final_prompt=f"a portrait, {m}",
            rating=r,
            is_best=m == best,
            **base,
        )
        for m, r in ratings.items()
    ]


@pytest.fixture
def store(tmp_path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "ratings.sqlite3")


def test_new_store_is_wal_at_current_schema(store):
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)


def test_submit_round_trips_every_field(store):
    recs = row(
        "c1",
        "  Alice ",
        {"raw": 2, "template": 4},
        best="template",
        session_tag="kickoff",
        blind=True,
        engine="tiny",
        model_id="m",
        latency_s=1.5,
        comment="nice",
        negative_prompt="blurry",
        created_at="2025-03-01T10:00:00+01:00",
    )
    assert store.submit(recs) == 0  # nothing replaced
    got = store.records()
    assert [(r.method, r.rating, r.is_best) for r in got] == [
        ("raw", 2, False),
        ("template", 4, True),
    ]
    r = got[1]
    assert r.rater == "Alice"  # stripped
    assert r.created_at == "2025-03-01T09:00:00.000000+00:00"  # normalised to UTC
    assert (r.session_tag, r.blind, r.engine, r.latency_s, r.comment) == (
        "kickoff",
        True,
        "tiny",
        1.5,
        "nice",
    )
    assert r.negative_prompt == "blurry" and r.image_path is None
    assert store.count() == 2 and store.count(blind=False) == 0


def test_created_at_defaults_to_submission_time(store):
    from datetime import UTC, datetime

    before = datetime.now(UTC)
    store.submit(row("c1", "a", {"raw": 3}))
    after = datetime.now(UTC)
    (r,) = store.records()
    assert r.created_at.endswith("+00:00")
    assert before <= datetime.fromisoformat(r.created_at) <= after  # stamped while submitting


def test_resubmission_replaces_only_that_raters_votes(store):
    store.submit(row("c1", "alice", {"raw": 1, "template": 2, "learned": 3}, best="learned"))
    store.submit(row("c1", "bob", {"raw": 5, "template": 5}))
    store.submit(row("c2", "alice", {"raw": 4}))
    replaced = store.submit(row("c1", "alice", {"raw": 5, "template": 4}, best="raw"))
    assert replaced == 3
    mine = store.records(rater="alice", comparison_id="c1")
    assert [(r.method, r.rating, r.is_best) for r in mine] == [
        ("raw", 5, True),
        ("template", 4, False),
    ]
    assert store.count(rater="bob") == 2 and store.count(comparison_id="c2") == 1
    assert store.count() == 5


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"rating": 0}, ["rating=0", "1 to 5"]),
        ({"rating": 6}, ["rating=6", "1 to 5"]),
        ({"rating": 3.5}, ["rating=3.5", "integer"]),
        ({"rating": True}, ["rating=True"]),
        ({"rater": "   "}, ["rater is empty", "your name"]),
        ({"comparison_id": ""}, ["comparison_id is empty"]),
        ({"method": ""}, ["method is empty"]),
        ({"seed": -1}, ["seed=-1", ">= 0"]),
        ({"latency_s": float("nan")}, ["latency_s=nan"]),
        ({"image_hash": "abc"}, ["image_hash='abc'", "64 lowercase hex"]),
        ({"created_at": "yesterday"}, ["created_at='yesterday'", "ISO 8601"]),
        ({"image_path": "/tmp/x.png"}, ["image_path='/tmp/x.png'", "set by the store"]),
        ({"is_best": 1}, ["is_best=1", "True or False"]),
        ({"rater": "x" * 101}, ["rater=", "max 100"]),
    ],
)
def test_invalid_record_is_rejected_with_its_value(store, change, words):
    (rec,) = row("c1", "alice", {"raw": 3})
    with pytest.raises(RatingError) as err:
        store.submit([replace(rec, **change)])
    for w in words:
        assert w in str(err.value)
    assert isinstance(err.value, ValueError)
    assert store.count() == 0


def test_row_level_rules(store):
    with pytest.raises(RatingError, match=r"picks 2 bests \(raw, template\)"):
        recs = row("c1", "a", {"raw": 3, "template": 4})
        store.submit([replace(r, is_best=True) for r in recs])
    with pytest.raises(RatingError, match=r"rates method.* raw twice"):
        store.submit(row("c1", "a", {"raw": 3}) * 2)
    with pytest.raises(RatingError, match="mixes style"):
        a, b = row("c1", "a", {"raw": 3, "template": 4})
        store.submit([a, replace(b, style="anime")])
    with pytest.raises(RatingError, match="mixes blind"):
        a, b = row("c1", "a", {"raw": 3, "template": 4})
        store.submit([a, replace(b, blind=True)])
    with pytest.raises(RatingError, match="empty submission"):
        store.submit([])
    # a pick per (row, rater): two raters may each pick one
    store.submit(row("c1", "a", {"raw": 3}, best="raw") + row("c1", "b", {"raw": 2}, best="raw"))
    assert store.count() == 2


def test_filters(store):
    store.submit(row("c1", "a", {"raw": 3}, session_tag="s1", created_at="2025-01-01T00:00:00"))
    store.submit(row("c2", "a", {"raw": 4}, session_tag="s2", created_at="2025-02-01T12:00:00"))
    store.submit(row("c3", "a", {"raw": 5}, style="anime", blind=True, created_at="2025-03-01"))
    assert [r.rating for r in store.records(style="watercolor")] == [3, 4]
    assert [r.rating for r in store.records(session_tag="s2")] == [4]
    assert [r.rating for r in store.records(since="2025-02-01")] == [4, 5]
    assert [r.rating for r in store.records(until="2025-02-01T12:00:00Z")] == [3]  # exclusive
    assert [r.rating for r in store.records(blind=True)] == [5]
    assert store.styles() == ["anime", "watercolor"] and store.session_tags() == ["s1", "s2"]
    with pytest.raises(FilterError, match="since='last week'"):
        store.records(since="last week")
    with pytest.raises(FilterError, match="blind='yes'"):
        store.records(blind="yes")
    with pytest.raises(FilterError, match="is not before"):
        store.records(since="2025-03-01", until="2025-01-01")


def _image(color) -> Image.Image:
    return Image.new("RGB", (16, 16), color)


def test_consented_images_are_stored_unconsented_not(store, tmp_path):
    imgs = {m: _image((i * 40, 10, 200)) for i, m in enumerate(("raw", "template", "learned"))}
    hashes = {m: image_sha256(im) for m, im in imgs.items()}
    recs = [
        replace(r, image_hash=hashes[r.method])
        for r in row("c1", "a", {"raw": 2, "template": 5, "learned": 4})
    ]
    store.submit(recs, images={hashes["template"]: imgs["template"]})  # consent for one output
    by_method = {r.method: r for r in store.records()}
    stored = Path(by_method["template"].image_path)
    assert stored == (tmp_path / "images" / f"{hashes['template']}.png").resolve()
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashes["template"]
    assert by_method["raw"].image_path is None and by_method["learned"].image_path is None
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [stored.name]

    # the same rater re-submits without consent: the image is withdrawn
    store.submit(recs)
    assert not stored.exists()
    assert all(r.image_path is None for r in store.records())


def test_image_keys_must_match_hashes(store):
    img = _image((1, 2, 3))
    (rec,) = row("c1", "a", {"raw": 3})
    rec = replace(rec, image_hash="0" * 64)
    with pytest.raises(RatingError, match="has hash"):
        store.submit([rec], images={"0" * 64: img})
    with pytest.raises(RatingError, match="no rating refers to"):
        store.submit([rec], images={image_sha256(img): img})
    assert not store.images_dir.exists() or not any(store.images_dir.iterdir())


def test_top_rated_images_ranks_consented_outputs(store):
    imgs = [_image((i * 50, 0, 0)) for i in range(4)]
    hs = [image_sha256(im) for im in imgs]
    means = {}
    for rater, ratings in (("a", (5, 4, 3, 5)), ("b", (5, 5, 2, 5))):
        recs = [
            replace(r, image_hash=h)
            for r, h in zip(
                row("c1", rater, dict(zip(METHODS[:4], ratings, strict=True))), hs, strict=True
            )
        ]
        consent = {h: im for h, im in zip(hs, imgs, strict=True) if h != hs[3]}  # #3 not kept
        store.submit(recs, images=consent if rater == "a" else None)
        for h, r in zip(hs, ratings, strict=True):
            means.setdefault(h, []).append(r)
    top = store.top_rated_images("watercolor", 5)
    # means: #0 5.0, #1 4.5, #2 2.5 (below min_mean), #3 5.0 but never consented
    assert [p.stem for p in top] == [hs[0], hs[1]]
    assert store.top_rated_images("watercolor", 1) == top[:1]
    assert [p.stem for p in store.top_rated_images("watercolor", 5, min_mean=1)][-1] == hs[2]
    assert store.top_rated_images("anime", 5) == []
    with pytest.raises(FilterError, match="k=-1"):
        store.top_rated_images("watercolor", -1)


def test_migrates_v1_database_to_current(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        for sql in MIGRATIONS[0]:
            conn.execute(sql)
        conn.execute("PRAGMA user_version = 1")
        columns = "created_at, rater, comparison_id, style, method, prompt, seed, rating, is_best"
        conn.executemany(
            f"INSERT INTO ratings ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("2024-05-01T10:00:00+00:00", "al", "c1", "anime", "raw", "p1", 3, 2, 0),
                # v1 appended re-submissions; the later vote must survive the migration
                ("2024-05-01T10:05:00+00:00", "al", "c1", "anime", "raw", "p1", 3, 4, 1),
                ("2024-05-01T10:05:00+00:00", "bo", "c1", "anime", "raw", "p1", 3, 1, 0),
            ],
        )
    conn.close()
    store = FeedbackStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    got = store.records()
    assert [(r.rater, r.rating, r.is_best, r.final_prompt, r.blind) for r in got] == [
        ("al", 4, True, "p1", False),
        ("bo", 1, False, "p1", False),
    ]
    # and the migrated store takes new-style submissions, replacing per (row, rater)
    assert store.submit(row("c1", "al", {"raw": 5}, style="anime", blind=True)) == 1
    assert store.count() == 2 and store.count(blind=True) == 1


def test_every_intermediate_version_migrates(tmp_path):
    for start in range(1, SCHEMA_VERSION):
        path = tmp_path / f"v{start}.sqlite3"
        with sqlite3.connect(path) as conn:
            for steps in MIGRATIONS[:start]:
                for sql in steps:
                    conn.execute(sql)
            conn.execute(f"PRAGMA user_version = {start}")
        conn.close()
        store = FeedbackStore(path)
        store.submit(row("c1", "a", {"raw": 3}))
        assert store.schema_version() == SCHEMA_VERSION and store.count() == 1


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.sqlite3"
    FeedbackStore(path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match=f"version {SCHEMA_VERSION + 1}"):
        FeedbackStore(path)


# concurrency: every submission is 5 ratings whose values encode (writer, i), so a torn or
# mixed submission shows up as a row whose ratings do not match its id


def _ratings_for(writer: int, i: int) -> dict[str, int]:
    return {m: 1 + (writer + i + j) % 5 for j, m in enumerate(METHODS)}


def _write_many(store: FeedbackStore | str, writer: int, n: int) -> None:
    if isinstance(store, str):  # a separate process opening the same file
        store = FeedbackStore(Path(store))
    for i in range(n):
        store.submit(row(f"w{writer}-c{i}", f"rater{writer}", _ratings_for(writer, i), "raw"))
        # everyone also re-votes on one shared row: it must end with exactly one vote each
        store.submit(row("shared", f"rater{writer}", _ratings_for(writer, i)))


def _check_concurrent_result(store: FeedbackStore, writers: int, n: int) -> None:
    recs = store.records()
    rows: dict[tuple[str, str], list[RatingRecord]] = {}
    for r in recs:
        rows.setdefault((r.comparison_id, r.rater), []).append(r)
    assert len(recs) == writers * (n + 1) * len(METHODS)
    for (cid, rater), votes in rows.items():
        w = int(rater.removeprefix("rater"))
        i = n - 1 if cid == "shared" else int(cid.split("-c")[1])  # the last re-vote wins
        assert {v.method: v.rating for v in votes} == _ratings_for(w, i), (cid, rater)
        assert len(votes) == len(METHODS)


def test_concurrent_threads_lose_no_rows(store):
    writers, n = 30, 6  # a 30-person session submitting at once
    # one store shared by all threads, as Gradio's worker threads share it
    threads = [threading.Thread(target=_write_many, args=(store, w, n)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_concurrent_result(store, writers, n)


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_concurrent_processes_lose_no_rows(store, start):
    writers, n = 3, 12
    store.count()  # the parent holds an open connection while children write
    # spawn: fresh interpreters opening the file; fork: children inheriting the store object
    target = str(store.path) if start == "spawn" else store
    ctx = mp.get_context(start)
    procs = [ctx.Process(target=_write_many, args=(target, w, n)) for w in range(writers)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0] * writers  # None: still running after 60 s
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    _check_concurrent_result(store, writers, n)


def _child_reconnects(store: FeedbackStore, q) -> None:
    inherited = store._local.conn
    store.count()
    q.put(store._local.conn is not inherited and inherited is not None)


def test_forked_child_never_uses_the_parents_connection(store):
    store.count()  # SQLite forbids using a connection across fork()
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_reconnects, args=(store, q))
    p.start()
    try:
        assert q.get(timeout=30) is True
        p.join(timeout=30)
        assert p.exitcode == 0
    finally:
        if p.is_alive():
            p.kill()
            p.join()


# export


def _fill(store):
    store.submit(row("c1", "a", {"raw": 2, "template": 5}, best="template", session_tag="s1"))
    store.submit(row("c2", "b", {"raw": 3}, style="anime", blind=True, comment="meh, ok"))


def test_training_rows_have_the_learned_methods_columns(store):
    _fill(store)
    rows = training_rows(store)
    assert [tuple(r) for r in rows] == [TRAINING_COLUMNS] * 3
    assert TRAINING_COLUMNS[:3] == ("prompt", "score", "style")
    assert rows[1]["prompt"] == "a portrait, template" and rows[1]["score"] == 5
    assert rows[1]["is_best"] is True and rows[2]["blind"] is True
    assert [r["score"] for r in training_rows(store, style="anime")] == [3]
    assert [r["score"] for r in training_rows(store, session_tag="s1")] == [2, 5]


def test_csv_and_jsonl_round_trip(store, tmp_path):
    _fill(store)
    expected = training_rows(store)
    assert export_csv(store, tmp_path / "out" / "r.csv") == 3
    with (tmp_path / "out" / "r.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == TRAINING_COLUMNS
        got = list(reader)
    for g, e in zip(got, expected, strict=True):
        assert g["prompt"] == e["prompt"] and int(g["score"]) == e["score"]
        assert int(g["seed"]) == e["seed"] and g["blind"] == ("true" if e["blind"] else "false")
        assert g["created_at"] == e["created_at"] and g["rater"] == e["rater"]
    assert export_jsonl(store, tmp_path / "r.jsonl", blind=True) == 1
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [expected[2]]
    assert not list(tmp_path.glob("**/*.tmp"))


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_a_spreadsheet_would_run_are_neutralised(store, tmp_path, start):
    # OWASP CSV injection: a rater's name and comment are typed by anyone at the kiosk
    evil = f'{start}HYPERLINK("http://x","y")'
    store.submit(row("c1", evil, {"raw": 4}, comment=evil, base_prompt=evil))
    export_csv(store, tmp_path / "r.csv")
    with (tmp_path / "r.csv").open(newline="") as f:
        got = next(csv.DictReader(f))
    export_jsonl(store, tmp_path / "r.jsonl")  # JSONL keeps what was stored
    stored = json.loads((tmp_path / "r.jsonl").read_text())
    for column in ("rater", "comment", "base_prompt"):
        typed = stored[column]  # the store trims a name's whitespace: a tab may be gone
        assert typed.endswith('HYPERLINK("http://x","y")'), column
        formula = typed.startswith(("=", "+", "-", "@", "\t", "\r"))
        assert got[column] == ("'" + typed if formula else typed), column
        assert not got[column].startswith(("=", "+", "-", "@", "\t", "\r")), column
    assert got["score"] == "4" and got["seed"] == "7"  # numbers stay numbers


# HF dataset sync


class FakeScheduler:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.lock = threading.Lock()
        self.stopped = False

    def stop(self):
        self.stopped = True

    def trigger(self):
        return "future"


def _settings(tmp_path, repo="", token="") -> Settings:
    return Settings(data_dir=tmp_path, feedback_repo=repo, feedback_token=token)


def test_sync_off_when_unconfigured(store, tmp_path):
    def factory(**kw):
        raise AssertionError("must not start")

    assert start_sync(_settings(tmp_path), store, scheduler_factory=factory) is None
    store.submit(row("c1", "a", {"raw": 3}))
    assert not (tmp_path / "feedback_sync").exists()


@pytest.mark.parametrize(
    ("repo", "token", "words"),
    [
        ("org/ratings", "", "BECOME_FEEDBACK_TOKEN is empty"),
        ("", "hf_x", "BECOME_FEEDBACK_REPO is empty"),
        ("org/bad name", "hf_x", "BECOME_FEEDBACK_REPO='org/bad name'"),
    ],
)
def test_sync_misconfiguration_is_an_error(store, tmp_path, repo, token, words):
    with pytest.raises(SyncConfigError, match=words):
        start_sync(_settings(tmp_path, repo, token), store, scheduler_factory=FakeScheduler)


def test_sync_logs_submissions_for_the_dataset(store, tmp_path):
    made = []

    def factory(**kw):
        made.append(FakeScheduler(**kw))
        return made[-1]

    sync = start_sync(_settings(tmp_path, "org/ratings", "hf_x"), store, scheduler_factory=factory)
    assert isinstance(sync, FeedbackSync)
    kw = made[0].kwargs
    assert (kw["repo_id"], kw["repo_type"], kw["token"], kw["private"]) == (
        "org/ratings",
        "dataset",
        "hf_x",
        True,
    )
    assert Path(kw["folder_path"]) == tmp_path / "feedback_sync" and kw["every"] > 0
    # ratings log + retrained model + staff-uploaded style references
    assert kw["allow_patterns"] == ["*.jsonl", "learned/*.npz", "references/*/*.png"]
    assert not Path(kw["folder_path"]).samefile(store.path.parent)  # the db is not uploaded

    img = _image((9, 9, 9))
    first = [replace(r, image_hash=image_sha256(img)) for r in row("c1", "a", {"raw": 2})]
    store.submit(first, images={image_sha256(img): img})
    store.submit(row("c1", "a", {"raw": 5, "template": 4}))  # a changed vote
    store.submit(row("c1", "b", {"raw": 1}))
    lines = [json.loads(x) for x in sync.path.read_text().splitlines()]
    assert len(lines) == 4 and all("image_path" not in x for x in lines)
    assert lines[0]["image_hash"] == image_sha256(img)
    assert lines[1]["submission_id"] == lines[2]["submission_id"] != lines[3]["submission_id"]
    # replaying the log gives what the store holds
    replayed = sorted((r.rater, r.method, r.rating) for r in read_log([sync.path]))
    held = sorted((r.rater, r.method, r.rating) for r in store.records())
    assert replayed == held == [("a", "raw", 5), ("a", "template", 4), ("b", "raw", 1)]
    sync.stop()
    assert made[0].stopped


class WatchedLock:
    """A lock that says when someone starts waiting for it (to synchronise on, not sleep)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.waiting.set()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def test_sync_writes_only_under_the_schedulers_lock(store, tmp_path):
    sched = FakeScheduler()
    sched.lock = WatchedLock()
    sync = FeedbackSync(tmp_path / "feedback_sync", sched)
    store.add_listener(sync)
    sched.lock.acquire()  # an upload is in progress
    sched.lock.waiting.clear()
    t = threading.Thread(target=store.submit, args=(row("c1", "a", {"raw": 3}),))
    try:
        t.start()
        assert sched.lock.waiting.wait(timeout=30)  # the append now waits for the upload
        assert not sync.path.exists() or sync.path.read_text() == ""
        assert store.count() == 1  # the vote itself is committed already
    finally:
        sched.lock.release()
        t.join(timeout=30)
    assert not t.is_alive()
    assert len(sync.path.read_text().splitlines()) == 1


def test_sync_start_failure_keeps_ratings_local(store, tmp_path):
    def factory(**kw):
        raise OSError("no network")

    settings = _settings(tmp_path, "org/r", "hf_x")
    assert start_sync(settings, store, scheduler_factory=factory) is None
    store.submit(row("c1", "a", {"raw": 3}))
    assert store.count() == 1


def test_failing_listener_does_not_lose_the_vote(store):
    def broken(records):
        raise RuntimeError("hub down")

    store.add_listener(broken)
    store.submit(row("c1", "a", {"raw": 3}))
    assert store.count() == 1


# CLI


def test_cli_export_and_leaderboard(store, tmp_path, capsys):
    _fill(store)
    out = tmp_path / "e.csv"
    cmd = ["export", "--db", str(store.path), "--format", "csv", "--out", str(out)]
    assert cli.main([*cmd, "--style", "watercolor"]) == 0
    assert len(out.read_text().splitlines()) == 3  # header + 2 watercolor rows
    assert cli.main(["leaderboard", "--db", str(store.path), "--json", "--boot", "20"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["style"], r["method"], r["blind"]) for r in rows} == {
        ("watercolor", "raw", False),
        ("watercolor", "template", False),
        ("anime", "raw", True),
    }
    assert cli.main(["leaderboard", "--db", str(store.path), "--session", "s1"]) == 0
    assert "template" in capsys.readouterr().out
    store.submit(row("c3", "bot", {"raw": 1}, style="oil", source="mcp"))
    page_only = ["leaderboard", "--db", str(store.path), "--json", "--source", "page"]
    assert cli.main(page_only) == 0
    assert "oil" not in {r["style"] for r in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["export", "--db", "{db}", "--format", "xml", "--out", "x"], "invalid choice: 'xml'"),
        (["leaderboard", "--db", "{missing}"], "no such ratings database"),
        (["leaderboard", "--db", "{db}", "--since", "soon"], "since='soon'"),
        (["leaderboard", "--db", "{db}", "--boot", "-3"], "n_boot=-3"),
        (["leaderboard", "--db", "{junk}"], "not a ratings database"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_bad_arguments_exit_2(store, tmp_path, capsys, args, words):
    junk = tmp_path / "junk.sqlite3"
    junk.write_text("not sqlite at all, just text" * 100)
    paths = {"db": store.path, "missing": tmp_path / "nope.sqlite3", "junk": junk}
    with pytest.raises(SystemExit) as exit_:
        cli.main([a.format(**paths) for a in args])
    assert exit_.value.code == 2
    assert words in capsys.readouterr().err


def test_cli_runs_as_a_module(store):
    _fill(store)
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.feedback", "leaderboard", "--db", str(store.path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "watercolor" in done.stdout and "template" in done.stdout


def test_fresh_disk_restores_ratings_from_the_dataset(store, tmp_path):
    # an earlier run synced a log (a changed vote included) to the dataset repo
    old = FeedbackStore(tmp_path / "old" / "r.sqlite3")
    sync = FeedbackSync(tmp_path / "hub" / "ratings", FakeScheduler())
    old.add_listener(sync)
    old.submit(row("c1", "a", {"raw": 2}))
    old.submit(row("c1", "a", {"raw": 5, "template": 4}))
    old.submit(row("c2", "b", {"raw": 1}))
    asked = {}

    def downloader(**kw):
        asked.update(kw)
        return str(tmp_path / "hub")

    settings = _settings(tmp_path / "new", "org/ratings", "hf_x")
    new_sync = start_sync(settings, store, scheduler_factory=FakeScheduler, downloader=downloader)
    assert asked["repo_id"] == "org/ratings" and asked["repo_type"] == "dataset"
    got = sorted((r.comparison_id, r.rater, r.method, r.rating) for r in store.records())
    assert got == [("c1", "a", "raw", 5), ("c1", "a", "template", 4), ("c2", "b", "raw", 1)]
    # restored ratings are not appended to the new log a second time
    assert not new_sync.path.exists() or new_sync.path.read_text() == ""


def test_restore_failure_starts_empty(store, tmp_path):
    def downloader(**kw):
        raise OSError("repo not found")

    settings = _settings(tmp_path, "org/ratings", "hf_x")
    assert start_sync(settings, store, scheduler_factory=FakeScheduler, downloader=downloader)
    assert store.count() == 0


def test_votes_stored_before_sources_keep_one_known_from_their_voter(tmp_path):
    """#41 item 9: the v7 migration gives every old vote a source: an API voter's
    ("api:<session>/<name>") is "api", every other vote came from the page."""
    path = tmp_path / "v6.sqlite3"
    with sqlite3.connect(path) as conn:
        for steps in MIGRATIONS[:6]:
            for sql in steps:
                conn.execute(sql)
        conn.execute("PRAGMA user_version = 6")
        columns = (
            "created_at, rater, voter, comparison_id, style, method, final_prompt, seed, rating"
        )
        conn.executemany(
            f"INSERT INTO ratings ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("2026-05-01T10:00:00+00:00", "al", "9f0c/al", "c1", "anime", "raw", "p", 1, 4),
                ("2026-05-01T10:00:00+00:00", "bo", "api:xyz/bo", "c1", "anime", "raw", "p", 1, 2),
                ("2026-05-01T10:00:00+00:00", "cy", "cy", "c1", "anime", "raw", "p", 1, 5),
                ("2026-05-01T10:00:00+00:00", "di", "API:x/di", "c1", "anime", "raw", "p", 1, 5),
            ],
        )
    conn.close()
    store = FeedbackStore(path)
    assert {r.rater: r.source for r in store.records()} == {
        "al": "page",
        "bo": "api",
        "cy": "page",
        "di": "page",
    }
    assert [r.rater for r in store.query(RecordFilter(source="api"))] == ["bo"]
    with pytest.raises(RatingError, match="source='robot' is not allowed"):
        store.submit(row("c2", "ed", {"raw": 3}, source="robot"))


def test_a_synced_log_from_before_sources_reads_back_with_them(tmp_path):
    log = tmp_path / "submissions-old.jsonl"
    lines = []
    for voter, rater in (("api:s1/bo", "bo"), ("b7/al", "al")):
        record = dict(row("c1", rater, {"raw": 3})[0].__dict__, voter=voter)
        record.pop("source")
        lines.append(json.dumps({"submission_id": rater, "submitted_at": "t", **record}))
    log.write_text("\n".join(lines) + "\n")
    assert {r.rater: r.source for r in read_log([log])} == {"bo": "api", "al": "page"}
