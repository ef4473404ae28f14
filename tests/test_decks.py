"""Decks end to end on the tiny engine: spec checks, 1 vs 2 processes, resume after a kill,
skipped selfies, corrupt manifests, sessions of 30 raters, Hub round trip."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pipelines.app.bootstrap import deck_comparison
from pipelines.decks.manifest import TMP_SUFFIX, DeckFolderError, read_manifest
from pipelines.decks.render import render_deck
from pipelines.decks.spec import DeckSpecError, load_spec

ROOT = Path(__file__).resolve().parent.parent
SPEC = {
    "deck": "test-deck",
    "selfies": "selfies",
    "styles": ["watercolor", "anime"],
    "methods": ["raw", "template", "learned"],
    "prompts": ["a portrait of a person"],
    "seeds": [1, 2],
    "engine": "tiny",
    "generation": {"num_inference_steps": 2, "height": 64, "width": 64},
}


def write_spec(folder: Path, portrait: Path, group: Path, **changes) -> Path:
    """A 2 selfies x 2 styles x 3 methods x 2 seeds spec: insightface's own photos only."""
    selfies = folder / "selfies"
    selfies.mkdir(parents=True, exist_ok=True)
    Image.open(portrait).save(selfies / "hanks.png")
    Image.open(group).convert("RGB").crop((0, 0, 400, 400)).save(selfies / "group_left.jpg")
    path = folder / "deck.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return path


def env_for(settings) -> dict[str, str]:
    return {**os.environ, "BECOME_DATA_DIR": str(settings.data_dir), "OMP_NUM_THREADS": "1"}


class _State:
    """accelerate's PartialState for one process, without its process-wide singleton."""

    is_main_process = True
    process_index = 0
    num_processes = 1

    def wait_for_everyone(self) -> None:
        pass

    def split_between_processes(self, items):
        from contextlib import nullcontext

        return nullcontext(items)


def render_here(spec_path: Path, out: Path, settings, services, compare=None):
    spec = load_spec(spec_path, settings)
    return render_deck(
        spec,
        out,
        spec.settings(settings),
        compare=compare or deck_comparison(services).compare,
        state=_State(),
        progress=False,
    )


def comparable(folder: Path) -> list[dict]:
    lines = read_manifest(folder)
    for line in lines:
        line.pop("timings")
        line.pop("image_hash")  # PNG bytes follow pixels, which may differ by 1/255
        line.pop("measures")
        line.pop("score")  # compared apart, within bfloat16's reach (see _same_scores)
    return lines


def _same_scores(a: Path, b: Path) -> None:
    """The learned scorer's scores of two decks' outputs agree within 2e-3. Its encoders run in
    bfloat16, and on an AMX CPU a prompt's encoding moves by up to ~6e-3 with the forward pass's
    shape and thread count (torchrun gives each process one thread), its score by up to ~1e-3
    (measured 7e-4); that the prompts and pixels agree is checked apart."""
    sa = [line["score"] for line in read_manifest(a)]
    sb = [line["score"] for line in read_manifest(b)]
    assert [s is None for s in sa] == [s is None for s in sb]
    assert [s for s in sa if s is not None] == pytest.approx(
        [s for s in sb if s is not None], abs=2e-3
    )


@pytest.fixture(scope="module")
def deck_spec(tmp_path_factory, portrait_path, group_path) -> Path:
    return write_spec(tmp_path_factory.mktemp("spec"), portrait_path, group_path)


@pytest.fixture(scope="module")
def one_process_deck(deck_spec, tmp_path_factory, tiny_settings, tiny_services) -> Path:
    out = tmp_path_factory.mktemp("deck1") / "deck"
    summary = render_here(deck_spec, out, tiny_settings, tiny_services)
    assert summary.rendered == 8 and summary.manifest_lines == 24
    return out


@pytest.mark.slow
def test_two_processes_give_the_same_manifest_and_pixels(
    deck_spec, one_process_deck, tmp_path, tiny_settings
):
    out = tmp_path / "deck2"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["-m", "pipelines.decks", "render", str(deck_spec), "--out", str(out), "--no-progress"]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env_for(tiny_settings), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("rendered 4 rows") == 2  # each process took half of the rows
    assert comparable(out) == comparable(one_process_deck)
    _same_scores(out, one_process_deck)
    for a, b in zip(read_manifest(one_process_deck), read_manifest(out), strict=True):
        pa = np.asarray(Image.open(one_process_deck / a["image"]), dtype=int)
        pb = np.asarray(Image.open(out / b["image"]), dtype=int)
        assert np.abs(pa - pb).max() <= 1  # within 1/255
        ia, ib = a["measures"]["identity"]["value"], b["measures"]["identity"]["value"]
        assert ia == pytest.approx(ib, abs=0.05)


# The CLI in a child that stops at a known point: on the third row, its first image is written
# to its temporary file and the rename is held back; the child says so on stdout and waits to be
# killed. Rows 1-2 are on disk, row 3 is half-written, rows 4-8 are not started.
KILL_POINT = """
import os, sys, threading
from pathlib import Path

from pipelines.decks.__main__ import main
from pipelines.decks.manifest import IMAGES, TMP_SUFFIX

real_replace = os.replace
rows = []


def replace(src, dst, *args, **kwargs):
    dst = Path(dst)
    if str(src).endswith(TMP_SUFFIX) and dst.parent.parent.name == IMAGES:
        if dst.parent.name not in rows:
            rows.append(dst.parent.name)
        if len(rows) == 3:
            print("third row half-written", flush=True)
            threading.Event().wait()  # until SIGKILL
    return real_replace(src, dst, *args, **kwargs)


os.replace = replace
sys.exit(main(sys.argv[1:]))
"""


def wait_for_line(proc: subprocess.Popen, seconds: float) -> str:
    """The child's next stdout line, or "" when it ends or says nothing for ``seconds``."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=seconds):
            return ""
    return proc.stdout.readline()


@pytest.mark.slow
def test_killed_render_resumes_with_only_the_missing_rows(
    deck_spec, tmp_path, tiny_settings, tiny_services
):
    out = tmp_path / "deck"
    cmd = [sys.executable, "-c", KILL_POINT, "render", str(deck_spec), "--out", str(out)]
    log = tmp_path / "child.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env_for(tiny_settings), stdout=subprocess.PIPE, stderr=err, text=True
        )
        try:
            said = wait_for_line(proc, 300)
            assert said == "third row half-written\n", log.read_text()[-3000:]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "rows").glob("*.json")}
    assert len(before) == 2  # killed mid-way: 2 rows done, 6 to go
    assert list((out / "images").rglob(f"*{TMP_SUFFIX}"))  # and the third one half-written
    calls = []
    compare = deck_comparison(tiny_services).compare
    summary = render_here(
        deck_spec,
        out,
        tiny_settings,
        tiny_services,
        compare=lambda *a: calls.append(a[1]) or compare(*a),
    )
    assert len(calls) == 8 - len(before) == summary.rendered and summary.already == len(before)
    for name, mtime in before.items():  # rows written before the kill are untouched
        assert (out / "rows" / name).stat().st_mtime_ns == mtime
    lines = read_manifest(out)
    keys = [(line["row_id"], line["method"]) for line in lines]
    assert len(keys) == len(set(keys)) == 24
    assert not list(out.rglob("*.tmp"))


def test_rerun_renders_nothing_and_keeps_the_manifest(
    deck_spec, one_process_deck, tiny_settings, tiny_services
):
    before = (one_process_deck / "manifest.jsonl").read_bytes()
    summary = render_here(deck_spec, one_process_deck, tiny_settings, tiny_services)
    assert summary.rendered == 0 and summary.already == 8
    assert (one_process_deck / "manifest.jsonl").read_bytes() == before


def test_manifest_lines_carry_what_the_issue_asks(one_process_deck):
    lines = read_manifest(one_process_deck)
    line = lines[0]
    for field in ("selfie", "style", "method", "seed", "final_prompt", "negative_prompt"):
        assert field in line
    assert line["engine"] == "tiny" and line["model_ids"]["base"].endswith("sd")
    assert set(line["timings"]) >= {"face", "augment", "render", "measure", "total"}
    assert line["measures"]["identity"]["judge"].endswith(".onnx")
    png = (one_process_deck / line["image"]).read_bytes()
    import hashlib

    assert hashlib.sha256(png).hexdigest() == line["image_hash"]
    assert {x["selfie"] for x in lines} == {"hanks", "group_left"}


def test_deck_rows_carry_the_learned_score_like_live_rows(one_process_deck, tiny_services):
    """A deck renders with the app's wiring: every output's prompt is scored by the learned
    scorer on the live rows' scale (rounded as live rows are), and measured by it too."""
    scorer = tiny_services.scorer.get()
    lines = read_manifest(one_process_deck)
    assert {line["method"] for line in lines} == {"raw", "template", "learned"}
    for line in lines:
        assert line["score"] is not None, line["row_id"]
        live = float(scorer.rerank([line["final_prompt"]], line["style"])[0][0])  # both stages
        assert line["score"] == round(live, 4)
        learned = line["measures"]["learned"]
        assert learned["value"] == pytest.approx(live, abs=1e-4)  # stored to 4 places
        assert learned["judge"].startswith("learned scorer")


def test_faceless_selfie_is_skipped_and_the_rest_rendered(
    tmp_path, portrait_path, group_path, tiny_settings, tiny_services
):
    spec = write_spec(tmp_path, portrait_path, group_path, styles=["anime"], seeds=[3])
    Image.new("RGB", (200, 200), (200, 180, 160)).save(tmp_path / "selfies" / "wall.png")
    out = tmp_path / "deck"
    summary = render_here(spec, out, tiny_settings, tiny_services)
    assert summary.rendered == 2 and summary.skipped == 1
    skipped = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert skipped[0]["selfie"] == "wall" and "wall.png" in skipped[0]["reason"]
    from pipelines.decks.report import build_report

    report = build_report(out)
    assert "## Skipped rows" in report.markdown and "wall.png" in report.markdown


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"selfies": "nowhere"}, r"field 'selfies' names .*nowhere, which is not a folder"),
        ({"styles": ["vaporwave"]}, r"field 'styles' names an unknown style 'vaporwave'"),
        ({"methods": ["raw", "magic"]}, r"field 'methods' names an unknown method 'magic'"),
        ({"seeds": [1, -2]}, r"field 'seeds'"),
        ({"deck": "has space"}, r"field 'deck'"),
        ({"colour": "red"}, r"field 'colour' is not a deck field"),
        ({"generation": {"height": 100}}, r"field 'generation.height'.*multiple of 8"),
        ({"generation": {"steps": 3}}, r"field 'generation.steps' is unknown"),
    ],
)
def test_bad_specs_name_the_file_and_field(
    tmp_path, portrait_path, group_path, tiny_settings, change, match
):
    spec = write_spec(tmp_path, portrait_path, group_path, **change)
    with pytest.raises(DeckSpecError, match=match) as err:
        load_spec(spec, tiny_settings)
    assert str(spec) in str(err.value)


def test_unreadable_selfie_is_named(tmp_path, portrait_path, group_path, tiny_settings):
    spec = write_spec(tmp_path, portrait_path, group_path)
    (tmp_path / "selfies" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DeckSpecError, match=r"field 'selfies' holds unreadable images: broken.jpg"):
        load_spec(spec, tiny_settings)


def test_cli_reports_a_bad_spec_with_status_2(tmp_path, tiny_settings):
    bad = tmp_path / "deck.json"
    bad.write_text('{"deck": "x", "styles": ')
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.decks", "render", str(bad), "--out", str(tmp_path / "o")],
        cwd=ROOT,
        env=env_for(tiny_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and f"{bad}: not valid json" in proc.stderr


def test_corrupt_manifest_line_is_named_and_nothing_is_lost(
    one_process_deck, tmp_path, deck_spec, tiny_settings, tiny_services
):
    import shutil

    deck = tmp_path / "copy"
    shutil.copytree(one_process_deck, deck)
    manifest = deck / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    broken = json.loads(lines[2])
    broken["seed"] = "two"
    lines[2] = json.dumps(broken)
    lines[5] = lines[5][:40]
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(DeckFolderError, match=r"manifest.jsonl, line 3: field 'seed' is 'two'"):
        read_manifest(deck)
    original = json.loads((one_process_deck / "manifest.jsonl").read_text().splitlines()[2])
    lines[2] = json.dumps({k: v for k, v in original.items() if k != "image"})
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(DeckFolderError, match=r"line 3: field 'image' is missing"):
        read_manifest(deck)
    lines[2] = json.dumps(original)
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(DeckFolderError, match=r"manifest.jsonl, line 6: not valid JSON"):
        read_manifest(deck)
    # the rows and images are intact: a rerun rebuilds the manifest without rendering
    summary = render_here(deck_spec, deck, tiny_settings, tiny_services)
    assert summary.rendered == 0 and len(read_manifest(deck)) == 24


def test_report_on_a_hand_worked_example(tmp_path, tiny_settings):
    """4 outputs of one style and method: identity 2, 4, 6, 8 -> mean 5, sd 2.582, t(3)=3.182,
    half-width 3.182 * 2.582 / 2 = 4.108. Mean ratings 1, 3, 2, 4 against the identities:
    5 concordant and 1 discordant pairs of 6 -> Kendall tau 4/6 = 0.667."""
    from pipelines.decks.report import build_report, write_report
    from pipelines.feedback.leaderboard import leaderboard
    from pipelines.feedback.records import RatingRecord
    from pipelines.feedback.store import FeedbackStore

    deck = tmp_path / "deck"
    deck.mkdir()
    (deck / "deck.json").write_text(json.dumps({"deck": "hand"}))
    lines = []
    for i, identity in enumerate([2.0, 4.0, 6.0, 8.0]):
        for method in ("raw", "template"):
            value = identity if method == "raw" else 0.5
            lines.append(
                {
                    "deck": "hand",
                    "row_id": f"r{i}",
                    "selfie": "s",
                    "style": "anime",
                    "base_prompt": "p",
                    "seed": i,
                    "method": method,
                    "final_prompt": method,
                    "negative_prompt": "",
                    "error": None,
                    "image": f"images/r{i}/{method}.png",
                    "image_hash": "0" * 64,
                    "measures": {"identity": {"value": value, "judge": "j", "reason": None}},
                    "params": {},
                    "timings": {},
                    "engine": "tiny",
                    "model_ids": {},
                }
            )
    (deck / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    store = FeedbackStore(tmp_path / "ratings.sqlite3")
    # raw's mean ratings per row: 1, 3, 2, 4 (two raters each); template always 3
    votes = {"r0": (1, 1), "r1": (2, 4), "r2": (2, 2), "r3": (4, 4)}
    for row, pair in votes.items():
        for rater, rating in zip(("a", "b"), pair, strict=True):
            store.submit(
                [
                    RatingRecord(
                        rater, f"hand/{row}", "anime", m, m, 0, r, deck_id="hand", row_id=row
                    )
                    for m, r in (("raw", rating), ("template", 3))
                ]
            )
    report = build_report(deck, store, n_boot=50)
    raw = next(c for c in report.cells if c.method == "raw")
    ci = raw.measures["identity"]
    assert (ci.n, ci.mean) == (4, 5.0)
    assert ci.low == pytest.approx(5.0 - 4.108, abs=1e-3)
    assert ci.high == pytest.approx(5.0 + 4.108, abs=1e-3)
    tau = report.kendall["identity"]["all"]
    assert tau.n == 8  # raw's 4 outputs and template's 4 (identity 0.5, rating 3: ties)
    only_raw = report.kendall["identity"]
    from pipelines.decks.stats import kendall

    assert kendall([2, 4, 6, 8], [1, 3, 2, 4]).tau == pytest.approx(4 / 6)
    assert only_raw["anime"].tau == tau.tau
    expected = leaderboard(store.records(deck_id="hand"), n_boot=50)
    assert [(r.method, r.bt_strength) for r in report.leaderboard] == [
        (r.method, r.bt_strength) for r in expected
    ]
    assert report.leaderboard[0].bt_low is not None  # the strength comes with its interval
    written = write_report(deck, store, n_boot=50)
    assert written.chart_path.is_file() and Image.open(written.chart_path).size[0] > 300
    assert "Kendall" in written.markdown_path.read_text()


def test_thirty_raters_on_a_loaded_deck(one_process_deck, tiny_services):
    """Balanced coverage, never a row twice, no rating lost, and every rater is told when done."""
    board, ratings = tiny_services.decks, tiny_services.ratings
    deck = board.load(str(one_process_deck))
    try:
        _thirty_raters(deck, board, ratings, tiny_services.store)
    finally:  # the services are shared by the whole session: leave no deck loaded
        board.unload()


def _thirty_raters(deck, board, ratings, store) -> None:
    n_rows = len(deck.rows)
    seen: dict[str, list[str]] = {}
    loads: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    # a rater told to wait retries once anyone has submitted since it asked: only a submission
    # changes what the assigner hands out
    submitted = threading.Condition()
    submissions = [0]

    def rater(i: int) -> None:
        name = f"rater {i}"
        rng = np.random.default_rng(i)
        while True:
            with submitted:
                asked_after = submissions[0]
            turn = board.next_row(name)
            with deck.assigner._lock:  # a consistent snapshot: ratings + rows handed out now
                load = deck.assigner._load()
            with lock:
                loads.append(max(load.values()) - min(load.values()))
            if turn.state == "done":
                return
            if turn.state == "wait":
                with submitted:
                    moved = submitted.wait_for(lambda n=asked_after: submissions[0] > n, 300)
                assert moved, f"{name} waited and nobody rated"
                continue
            assert turn.result.outputs[0].image is not None  # images served from the deck
            with lock:
                seen.setdefault(name, []).append(turn.row_id)
            votes = {o.method: int(rng.integers(1, 6)) for o in turn.result.outputs}
            ratings.submit(turn.comparison_id, votes, rater=name, blind=True)
            with submitted:
                submissions[0] += 1
                submitted.notify_all()

    def run(i: int) -> None:
        try:
            rater(i)
        except BaseException as exc:  # reported by the test, not lost in the thread
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not [t.name for t in threads if t.is_alive()], "raters still running after 300 s"
    assert not errors, errors
    assert all(len(rows) == len(set(rows)) == n_rows for rows in seen.values())
    assert len(seen) == 30
    assert max(loads) <= 1  # no row ever ran two ahead of another
    stored = store.records(deck_id="test-deck")
    assert len(stored) == 30 * n_rows * 3  # every vote of every rater, none lost
    assert {r.row_id for r in stored} == set(deck.rows)
    assert all(r.measures and r.blind for r in stored)
    assert set(deck.assigner.counts().values()) == {30}


def test_hub_push_and_pull_round_trip(one_process_deck, tmp_path, monkeypatch):
    import huggingface_hub

    from pipelines.decks import hub

    remote = tmp_path / "remote"
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kw):
            calls["create"] = (repo_id, kw["repo_type"])

        def upload_folder(self, repo_id, repo_type, folder_path, allow_patterns, **kw):
            import fnmatch
            import shutil

            calls["patterns"] = allow_patterns
            for p in Path(folder_path).rglob("*"):
                rel = p.relative_to(folder_path).as_posix()
                if p.is_file() and any(fnmatch.fnmatch(rel, pat) for pat in allow_patterns):
                    (remote / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(p, remote / rel)

    def fake_download(repo_id, repo_type, local_dir, allow_patterns, token):
        import shutil

        assert repo_type == "dataset"
        shutil.copytree(remote, local_dir, dirs_exist_ok=True)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    hub.push_deck(one_process_deck, "team/deck-a", token="t")
    assert calls["create"] == ("team/deck-a", "dataset")
    assert not (remote / "rows").exists()  # row files stay on the rendering machine
    pulled = hub.pull_deck("team/deck-a", tmp_path / "pulled")
    assert len(read_manifest(pulled)) == 24
    assert (pulled / read_manifest(pulled)[0]["image"]).is_file()
    with pytest.raises(ValueError, match="owner/name"):
        hub.pull_deck("not a repo", tmp_path / "x")
