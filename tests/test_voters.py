"""Who a voter is (issue #17, section 7): the browser and the typed name together; the browser's
id outlives a restart (a fixed secret); decks hand rows out by voter; a row rendered before a
restart can be rated after it (what rating needs is kept on disk, never an image)."""

from __future__ import annotations

import json
import os
import stat
import uuid
from dataclasses import replace

import pytest
from PIL import Image

from pipelines.core.measures import Measure, Measures
from pipelines.core.recent import RecentComparisons, UnknownComparisonError
from pipelines.core.request import CompareRequest
from pipelines.core.results import ComparisonResult, MethodOutput
from pipelines.core.settings import Settings, SettingsError
from pipelines.core.trace import Candidate, TraceStep
from pipelines.decks.board import DeckBoard
from pipelines.feedback.ratings import RatingService
from pipelines.feedback.records import image_sha256, voter_id
from pipelines.feedback.store import FeedbackStore


def fake_result(cid: str = "c0ffee") -> ComparisonResult:
    """A rendered two-output row, built by hand (no model)."""
    outputs = []
    for i, method in enumerate(("raw", "template")):
        image = Image.new("RGB", (8, 8), (40 * i, 90, 200))
        outputs.append(
            MethodOutput(
                method=method,
                prompt=f"a portrait, {method}",
                negative_prompt="blurry",
                score=0.25 * i,
                tokens=7,
                trace=(TraceStep("a portrait", "template", "the style's template"),),
                candidates=(Candidate(f"a portrait, {method}", method, 0.5),),
                image=image,
                image_hash=image_sha256(image),
                measures=Measures(identity=Measure(0.5, "judge.onnx"), faces=1),
            )
        )
    request = CompareRequest(
        style="anime",
        prompt="a portrait",
        methods=("raw", "template"),
        seed=7,
        num_inference_steps=2,
        guidance_scale=6.0,
        height=64,
        width=64,
    )
    return ComparisonResult(
        comparison_id=cid,
        request=request,
        outputs=tuple(outputs),
        face_crop=Image.new("RGB", (4, 4)),
        num_faces=1,
        det_score=0.9,
        engine="tiny",
        engine_reason="test",
        model_ids={"base": "tiny"},
        timings={"render": 1.5},
    )


# ----------------------------------------------------------------------------- the secret


def test_the_browser_secret_is_generated_once_and_kept_in_the_data_dir(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    first = settings.with_browser_secret().browser_secret
    again = Settings(data_dir=tmp_path / "data").with_browser_secret().browser_secret
    assert len(first) >= 16 and again == first  # a restart reads the same secret
    path = tmp_path / "data" / "browser_secret"
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # only the app's user reads it
    other = Settings(data_dir=tmp_path / "elsewhere").with_browser_secret().browser_secret
    assert other != first
    assert first not in repr(settings.with_browser_secret())  # never printed with the settings


def test_a_browser_secret_from_the_environment_wins_and_is_never_shown(tmp_path):
    secret = "s3cret-" * 4
    env = {"BECOME_BROWSER_SECRET": secret, "BECOME_DATA_DIR": str(tmp_path)}
    settings = Settings.from_env(env).with_browser_secret()
    assert settings.browser_secret == secret
    assert not (tmp_path / "browser_secret").exists()
    with pytest.raises(SettingsError, match="BECOME_BROWSER_SECRET has 5 characters") as err:
        Settings.from_env({"BECOME_BROWSER_SECRET": "short"})
    assert "short" not in str(err.value)


# ----------------------------------------------------------------------------- votes


@pytest.fixture
def service(tmp_path) -> RatingService:
    recent = RecentComparisons(folder=tmp_path / "recent")
    recent.add(fake_result())
    return RatingService(FeedbackStore(tmp_path / "ratings.sqlite3"), recent)


def test_two_names_on_one_browser_keep_separate_votes(service):
    """A kiosk: one browser, two people; neither replaces the other's vote."""
    service.submit("c0ffee", {"raw": 2}, rater="ann", voter="kiosk")
    second = service.submit("c0ffee", {"raw": 5}, rater="bo", voter="kiosk")
    assert not second.replaced_earlier
    rows = service.store.records(comparison_id="c0ffee")
    assert {(r.rater, r.rating) for r in rows} == {("ann", 2), ("bo", 5)}
    assert {r.voter for r in rows} == {"kiosk/ann", "kiosk/bo"}
    again = service.submit("c0ffee", {"raw": 3}, rater=" ann ", voter="kiosk")  # ann changes hers
    assert again.replaced_earlier
    rows = service.store.records(comparison_id="c0ffee")
    assert {(r.rater, r.rating) for r in rows} == {("ann", 3), ("bo", 5)}


def test_one_name_on_two_browsers_keeps_two_voters(service):
    service.submit("c0ffee", {"raw": 2}, rater="ann", voter="browser-1")
    service.submit("c0ffee", {"raw": 4}, rater="ann", voter="browser-2")
    rows = service.store.records(comparison_id="c0ffee")
    assert sorted(r.rating for r in rows) == [2, 4]


def test_voter_id_is_the_client_and_the_name():
    assert voter_id("b1", "  Ann   Lee ") == "b1/Ann Lee"
    assert voter_id("", "Ann  Lee") == "Ann Lee"  # no client: the name, as before voters


# ----------------------------------------------------------------------------- restarts


def test_a_row_rendered_before_a_restart_can_be_rated_after_it(
    tiny_settings, tiny_services, portrait_path, make_request
):
    """Restart = a new Services from the same data dir: the row is read back from disk (no
    image, no face crop), rated, and the rating describes exactly what was rendered."""
    from pipelines.app.bootstrap import build_services

    result = tiny_services.comparison.compare(
        str(portrait_path), make_request("anime", "a portrait", ["raw", "template"], seed=3)
    )
    cid = result.comparison_id
    kept = tiny_settings.recent_dir / f"{cid}.json"
    data = json.loads(kept.read_text("utf-8"))
    assert {o["image_hash"] for o in data["outputs"]} == {o.image_hash for o in result.outputs}
    assert "face_crop" not in data and all("image" not in o for o in data["outputs"])
    assert kept.stat().st_size < 20_000  # prompts and numbers, no pixels

    restarted = build_services(tiny_settings)
    images_before = set(restarted.store.images_dir.glob("*.png"))
    receipt = restarted.ratings.submit(
        cid, {"raw": 4, "template": 2}, rater="ann", voter="b1", consent_images=True
    )
    assert receipt.saved == 2
    rows = {r.method: r for r in restarted.store.records(comparison_id=cid)}
    for out in result.outputs:
        assert rows[out.method].final_prompt == out.prompt
        assert rows[out.method].image_hash == out.image_hash
        assert rows[out.method].measures == json.dumps(out.measures.to_json())
        assert rows[out.method].seed == 3 and rows[out.method].image_path is None
    # the images were never on disk: a consent after the restart cannot keep them
    assert set(restarted.store.images_dir.glob("*.png")) == images_before
    again = restarted.comparison.recent.get(cid)
    assert again.face_crop is None and all(o.image is None for o in again.outputs)
    assert [o.trace for o in again.outputs] == [o.trace for o in result.outputs]


def test_a_kept_row_reads_back_as_it_was_rendered(tmp_path):
    original = fake_result()
    RecentComparisons(folder=tmp_path).add(original)
    back = RecentComparisons(folder=tmp_path).get("c0ffee")  # a new process
    assert back.request == original.request
    assert back.without_images() == original.without_images()


def test_kept_rows_go_after_a_day_and_odd_ids_are_never_looked_up(tmp_path):
    now = [1_000_000.0]
    recent = RecentComparisons(folder=tmp_path, clock=lambda: now[0])
    recent.add(fake_result("old"))
    os.utime(tmp_path / "old.json", (now[0], now[0]))
    now[0] += recent.keep_s + 1
    restarted = RecentComparisons(folder=tmp_path, clock=lambda: now[0])  # prunes at start
    assert not (tmp_path / "old.json").exists()
    with pytest.raises(UnknownComparisonError, match="not in memory any more"):
        restarted.get("old")
    (tmp_path.parent / "outside.json").write_text(json.dumps({"comparison_id": "x"}))
    with pytest.raises(UnknownComparisonError):
        restarted.get("../outside")


def test_a_row_expires_a_day_after_it_was_rendered_in_memory_too(tmp_path):
    now = [1_000_000.0]
    recent = RecentComparisons(folder=tmp_path, clock=lambda: now[0])
    recent.add(fake_result("kept"))
    now[0] += recent.keep_s - 60
    assert recent.get("kept").comparison_id == "kept"
    now[0] += 120  # a day and a minute: refused though it is still in memory
    with pytest.raises(UnknownComparisonError):
        recent.get("kept")


def test_copying_the_data_folder_does_not_restart_a_row_s_clock(tmp_path):
    now = [1_000_000.0]
    RecentComparisons(folder=tmp_path / "a", clock=lambda: now[0]).add(fake_result("copied"))
    now[0] += RecentComparisons().keep_s + 120
    copy = tmp_path / "b"
    copy.mkdir()
    (copy / "copied.json").write_bytes((tmp_path / "a" / "copied.json").read_bytes())
    os.utime(copy / "copied.json", (now[0], now[0]))  # a fresh file time, as cp gives
    restarted = RecentComparisons(folder=copy, clock=lambda: now[0])
    assert not (copy / "copied.json").exists()  # pruned at start by its record's time
    with pytest.raises(UnknownComparisonError):
        restarted.get("copied")


def test_a_file_kept_before_records_carried_their_time_ages_by_its_file_time(tmp_path):
    now = [1_000_000.0]
    recent = RecentComparisons(folder=tmp_path, clock=lambda: now[0])
    recent.add(fake_result("legacy"))
    path = tmp_path / "legacy.json"
    data = json.loads(path.read_text())
    del data["rendered_at"]
    path.write_text(json.dumps(data))
    os.utime(path, (now[0], now[0]))
    fresh = RecentComparisons(folder=tmp_path, clock=lambda: now[0])
    assert fresh.get("legacy").comparison_id == "legacy"
    now[0] += fresh.keep_s + 1
    assert fresh.prune() == 1


# ----------------------------------------------------------------------------- decks


def test_two_raters_with_one_name_on_two_browsers_get_rows_independently(tmp_path, small_deck):
    store = FeedbackStore(tmp_path / "ratings.sqlite3")
    board = DeckBoard(store, tmp_path / "decks")
    board.load_folder(small_deck)
    ratings = RatingService(store, RecentComparisons(), board.find)

    def rate_all(name: str, browser: str) -> None:
        while (turn := board.next_row(name, browser)).state == "row":
            ratings.submit(turn.comparison_id, {"raw": 3}, rater=name, voter=browser)

    rate_all("ann", "browser-1")
    assert board.next_row("ann", "browser-1").state == "done"
    other = board.next_row("ann", "browser-2")  # the same name, another person
    assert other.state == "row" and other.rated == 0
    kiosk = board.next_row("bo", "browser-1")  # another name on the first browser
    assert kiosk.state == "row" and kiosk.rated == 0

    restarted = DeckBoard(store, tmp_path / "decks")  # coverage seeded from the store by voter
    restarted.load_folder(small_deck)
    assert restarted.next_row("ann", "browser-1").state == "done"
    assert restarted.next_row("ann", "browser-2").rated == 0


# ----------------------------------------------------------------------------- server-issued ids


def test_voter_ids_are_signed_by_the_server_and_verified(tmp_path):
    """#41 item 10: the page chose its own voter id, so any page could present a victim's."""
    from pipelines.feedback.voters import VoterIds

    ids = VoterIds("k" * 32)
    voter = ids.issue()
    assert voter.new and len(voter.id) == 32 and voter.token.startswith(voter.id + ".")
    assert ids.verify(voter.token) == replace(voter, new=False)
    assert ids.vouch(voter.token).id == voter.id  # kept across page loads and votes
    victim_id = voter.id
    for forged in (
        victim_id,  # the id alone, as pages kept it before
        f"{victim_id}.{'0' * 64}",  # a made-up signature
        f"{victim_id}.{VoterIds('another key 1234').issue().token.split('.')[1]}",
        voter.token[:-1] + ("0" if voter.token[-1] != "0" else "1"),  # one digit changed
        "",
        None,
        42,
        voter.token + ".x",
    ):
        assert ids.verify(forged) is None, forged
        fresh = ids.vouch(forged)
        assert fresh.new and fresh.id != victim_id
    other_server = VoterIds("a different key!")
    assert other_server.verify(voter.token) is None  # a key of its own: tokens do not travel
    # an MCP caller is known by its address, stored only as a keyed hash of it
    alias = ids.pseudonym("198.51.100.7")
    assert alias == ids.pseudonym("198.51.100.7") and len(alias) == 16
    assert alias != ids.pseudonym("198.51.100.8") != other_server.pseudonym("198.51.100.7")


def test_the_voter_key_is_generated_once_kept_owner_only_and_never_shown(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    key = settings.with_voter_key().voter_key
    assert len(key) >= 16 and Settings(data_dir=tmp_path / "data").with_voter_key().voter_key == key
    path = tmp_path / "data" / "voter_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key not in repr(settings.with_voter_key())
    assert key != settings.with_browser_secret().browser_secret  # the page's secret is another
    env = {"BECOME_VOTER_KEY": "v" * 20, "BECOME_DATA_DIR": str(tmp_path / "env")}
    assert Settings.from_env(env).with_voter_key().voter_key == "v" * 20
    with pytest.raises(SettingsError, match="BECOME_VOTER_KEY has 5 characters") as err:
        Settings.from_env({"BECOME_VOTER_KEY": "short"})
    assert "short" not in str(err.value)


@pytest.fixture
def page(tmp_path):
    """The rating panel's submit over a real RatingService, and the row it rates."""
    from demo.feedback_panel import FeedbackCallbacks, FeedbackHandlers
    from demo.rows import ShownRow
    from pipelines.feedback.sessions import SessionConfig
    from pipelines.feedback.voters import VoterIds

    recent = RecentComparisons(folder=tmp_path / "recent")
    result = fake_result()
    recent.add(result)
    service = RatingService(FeedbackStore(tmp_path / "ratings.sqlite3"), recent)
    ids = VoterIds("server-side-key-" * 2)
    cb = FeedbackCallbacks(submit=service.submit, session=SessionConfig, vouch=ids.vouch)
    handlers = FeedbackHandlers(cb, 2)
    row = ShownRow(result.without_images(), ("raw", "template"), blind=False)

    def submit(name: str, token: str | None, raw: str, template: str) -> str:
        return handlers.submit(row, None, "", name, "", False, token, raw, template)[-1]

    return handlers, submit, service.store


def test_a_victims_id_sent_by_another_page_never_reaches_the_victims_votes(page):
    handlers, submit, store = page
    carol_token = handlers.page_load(["carol", ""], None)[3]  # the server issues it
    assert submit("carol", carol_token, "5", "5") == carol_token
    carol_id = carol_token.split(".")[0]
    # the attacker sends carol's id: bare (as pages kept it before), or with a made-up signature
    for forged in (carol_id, f"{carol_id}.{'f' * 64}"):
        returned = submit("carol", forged, "1", "1")
        assert returned != forged and not returned.startswith(carol_id)  # a voter of its own
    # a name spelling "<carol's id>/carol" with no id at all
    submit(f"{carol_id}/carol", "", "1", "1")
    carols = [r for r in store.records(comparison_id="c0ffee") if r.voter == f"{carol_id}/carol"]
    assert sorted((r.method, r.rating) for r in carols) == [("raw", 5), ("template", 5)]
    assert {r.source for r in store.records()} == {"page"}
    assert len({r.voter for r in store.records()}) == 4  # carol, two forgers, the odd name


def test_a_page_keeps_its_signed_id_and_an_unsigned_one_is_replaced(page):
    handlers, _, _ = page
    first = handlers.page_load(None, None)[3]
    assert handlers.page_load(None, first)[3] == first  # a reload keeps the voter
    old_style = uuid.uuid4().hex  # an id a page chose itself, before ids were signed
    assert handlers.page_load(None, old_style)[3] != old_style


def test_the_voter_key_never_reaches_the_page(tiny_services):
    """The browser secret is in every page's config (Gradio encrypts in the browser); the key
    that signs voter ids must not be."""
    import json

    from demo import build_demo

    config = json.dumps(build_demo(tiny_services).get_config_file(), default=str)
    assert tiny_services.settings.voter_key not in config
    assert tiny_services.settings.browser_secret in config  # known: it guards nothing
