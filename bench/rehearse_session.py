"""Rehearse a whole live session: a facilitator and 3 people in real browsers, 27 more over the
API, all at once, on the tiny (or preview) engine; then check what the ratings database holds.

The facilitator starts a blind session from the Staff tab (1366x768). Three participants (two
laptops, one phone) each upload a photo the insightface package ships, press Generate, rate
every output and submit; 27 API participants call ``/compare`` then ``/rate`` at the same time.
Prints what each browser person saw and when (first message in view after the click, row ready,
reveal), the API people's waits, and what the database stored; screenshots go to ``--shots``.

    python bench/rehearse_session.py --shots /tmp/rehearsal [--engine preview]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PASSWORD = "rehearsal-pw"
TAG = "rehearsal"
METHODS = ["raw", "template", "learned", "inversion"]
BROWSERS = [("ann", 1366, 768), ("bo", 390, 844), ("cy", 1366, 768)]
API_PEOPLE = 27
CHROMIUM = "/usr/bin/chromium"


def photo(name: str) -> str:
    import insightface

    return str(Path(insightface.__file__).parent / "data" / "images" / name)


def launch(data: Path, engine: str, steps: int, size: int) -> Any:
    """The real app (build_demo with its CSS and theme) on ``engine``."""
    os.environ.update(
        BECOME_ENGINE=engine,
        BECOME_STEPS=str(steps),
        BECOME_SIZE=str(size),
        BECOME_DATA_DIR=str(data),
        BECOME_STAFF_PASSWORD=PASSWORD,
        HF_HUB_OFFLINE="1",
    )
    from demo import CSS, THEME, build_demo
    from demo.serving import queue_demo
    from pipelines.app.bootstrap import build_services
    from pipelines.core.settings import Settings

    services = build_services(Settings.from_env())
    demo = build_demo(services)
    queue_demo(demo, services.settings, default_concurrency_limit=4)  # the app's lines
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, css=CSS, theme=THEME)
    return services, demo


def in_view(page: Any, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    view = page.viewport_size
    return bool(
        box and box["height"] and box["y"] < view["height"] and box["y"] + box["height"] > 0
    )


def words(text: str) -> str:
    """A status as one table cell."""
    return " ".join(text.split())[:80].replace("|", "/")


def poll(condition: Any, seconds: float = 900.0) -> float:
    """Seconds until ``condition()`` holds (raises after ``seconds``)."""
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > seconds:
            raise TimeoutError(f"gave up after {seconds:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def facilitate(url: str, shots: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
        page.goto(url)
        page.get_by_role("tab", name="Staff").click()
        # the tab fills its form from the live session when it opens: type after that
        page.locator("#fac-summary").get_by_text("No session is running").wait_for()
        page.locator("#staff-pw input").fill(PASSWORD)
        page.locator("#fac-tag textarea, #fac-tag input").first.fill(TAG)
        page.locator("#fac-blind input").check()
        page.locator("#fac-start").click()
        try:
            page.locator("#fac-summary").get_by_text(f"Current session: {TAG}").wait_for(
                timeout=60_000
            )
        finally:
            page.screenshot(path=str(shots / "facilitator-started.png"), full_page=True)
        browser.close()


def participate(url: str, name: str, size: tuple[int, int], shots: Path, out: dict) -> None:
    """One person in a browser: upload, Generate, rate everything, submit; what they saw."""
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {"name": name, "size": f"{size[0]}x{size[1]}"}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_context(viewport={"width": size[0], "height": size[1]}).new_page()
        page.set_default_timeout(900_000)
        page.goto(url)
        page.locator("#selfie input[type=file]").set_input_files(photo("t1.jpg"))
        page.locator("#selfie img").first.wait_for()
        page.locator("#generate").scroll_into_view_if_needed()
        page.locator("#generate").click()
        t0 = time.monotonic()
        status = page.locator("#run-status")
        seen["first message s"] = poll(
            lambda: status.inner_text().strip() != "" and in_view(page, "#run-status")
        )
        seen["first message"] = words(status.inner_text())
        page.screenshot(path=str(shots / f"{name}-1-waiting.png"))
        # what a person who keeps looking reads a few seconds later (place in line, steps)
        poll(lambda: time.monotonic() - t0 > 4.0 or page.locator("#out-caption-0").count() > 0)
        seen["at 4 s"] = (
            words(status.inner_text()) if in_view(page, "#run-status") else "(off-screen)"
        )
        page.screenshot(path=str(shots / f"{name}-1b-at-4s.png"))
        page.locator("#out-caption-0").get_by_text("Output A").wait_for()
        seen["row s"] = time.monotonic() - t0
        seen["row in view"] = poll(lambda: in_view(page, "#out-image-0"), 5.0) < 5.0
        seen["blind box locked"] = page.locator("#blind input").first.is_disabled()
        page.screenshot(path=str(shots / f"{name}-2-row.png"))
        cards = page.locator("[id^=rate-]:visible").count()
        seen["rated"] = cards
        for i in range(cards):
            page.locator(f"#rate-{i} label").nth(i % 5).click()
        page.locator("#rater textarea, #rater input").first.fill(name)
        page.locator("#submit-ratings").click()
        page.locator("#rating-status").get_by_text("Saved").first.wait_for()
        poll(lambda: " = " in page.locator("#out-caption-0").inner_text(), 30.0)
        seen["revealed"] = True  # "Output A = raw": the methods shown once every output is rated
        page.screenshot(path=str(shots / f"{name}-3-revealed.png"), full_page=True)
        browser.close()
    out[name] = seen


def api_person(url: str, k: int, out: list, errors: list) -> None:
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False)
        t0 = time.monotonic()
        _, meta = client.predict(
            handle_file(photo("t1.jpg")), "anime", "a portrait", METHODS, k, api_name="/compare"
        )
        waited = time.monotonic() - t0
        rendered = [o["method"] for o in meta["outputs"] if o["rendered"]]  # preview: no CLIP
        ratings = {m: 1 + (k + i) % 5 for i, m in enumerate(rendered)}
        client.predict(
            meta["comparison_id"],
            ratings,
            f"api-{k}",
            rendered[k % len(rendered)],
            TAG,
            "",
            True,
            False,
            api_name="/rate",
        )
        out.append((waited, len(ratings)))
    except Exception as exc:  # reported below: the rehearsal counts them
        errors.append(f"api-{k}: {exc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=Path, default=Path(tempfile.mkdtemp()) / "shots")
    parser.add_argument("--engine", choices=["tiny", "preview"], default="tiny")
    # the tiny engine's random weights draw noise at any size: small renders keep the
    # rehearsal about the page, not the CPU (its defaults, 512 px x 30 steps, take ~1 min)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    args.shots.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp())
    services, demo = launch(data, args.engine, args.steps, args.size)
    url = demo.local_url
    try:
        facilitate(url, args.shots)
        seen: dict[str, dict] = {}
        waits: list[tuple[float, int]] = []  # (seconds waited, outputs rated)
        errors: list[str] = []
        threads = [
            threading.Thread(target=participate, args=(url, n, (w, h), args.shots, seen))
            for n, w, h in BROWSERS
        ] + [
            threading.Thread(target=api_person, args=(url, k, waits, errors))
            for k in range(API_PEOPLE)
        ]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = time.monotonic() - t0
        records = services.store.records(session_tag=TAG)
    finally:
        demo.close()

    print(
        f"## Rehearsal: facilitator + {len(BROWSERS)} browsers + {API_PEOPLE} API, "
        f"{args.engine} engine, {args.size} px, {args.steps} steps"
    )
    print(f"all {len(BROWSERS) + API_PEOPLE} people done in {total:.1f} s; shots in {args.shots}")
    print(
        "| person | screen | first message in view | its words | at 4 s | row ready | "
        "row in view | Blind locked | revealed after full submit |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, *_ in BROWSERS:
        s = seen.get(name)
        if s is None:
            print(f"| {name} | did not finish | | | | | | | |")
            continue
        print(
            f"| {name} | {s['size']} | {s['first message s']:.1f} s | {s['first message']} | "
            f"{s['at 4 s']} | {s['row s']:.1f} s | {s['row in view']} | "
            f"{s['blind box locked']} | {s['revealed']} |"
        )
    if waits:
        rated = sum(n for _, n in waits)
        waits = [w for w, _ in waits]  # type: ignore[misc]
        q = statistics.quantiles(waits, n=20) if len(waits) > 1 else waits * 19
        print(
            f"API people: {len(waits)} rows, wait p50 {statistics.median(waits):.1f} s, "
            f"p95 {q[18]:.1f} s, max {max(waits):.1f} s"
        )
    for e in errors:
        print("API error:", e)
    people = {r.voter for r in records}
    print(
        f"database: {len(records)} ratings from {len(people)} voters, all tagged {TAG!r}, "
        f"blind {sum(r.blind for r in records)}/{len(records)}"
    )
    expected = (rated if waits else 0) + sum(s["rated"] for s in seen.values())
    ok = not errors and len(seen) == len(BROWSERS) and len(records) == expected
    ok = ok and all(r.blind for r in records)
    ok = ok and all(s["first message s"] < 5 and s["blind box locked"] for s in seen.values())
    print("rehearsal:", "OK" if ok else f"PROBLEMS (expected {expected} blind ratings)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
