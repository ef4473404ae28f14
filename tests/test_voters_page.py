"""The page's side of who a voter is (issue #17, section 7): every value a browser keeps is
encrypted with the app's fixed secret, so a restart still reads the browser's voter id."""

from __future__ import annotations


def test_a_restarted_app_gives_every_browser_state_the_same_secret(tiny_settings, tiny_services):
    """The browser encrypts its voter id, name and last row with the page's secret: a restart
    (a new Services from the same data dir) must give the page the same one, or every browser
    votes again as a new voter."""
    import gradio as gr

    from demo import build_demo
    from pipelines.app.bootstrap import build_services

    def secrets_of(services) -> dict[str, str]:
        demo = build_demo(services)
        states = [b for b in demo.blocks.values() if isinstance(b, gr.BrowserState)]
        return {b.storage_key: b.secret for b in states}

    before = secrets_of(tiny_services)
    after = secrets_of(build_services(tiny_settings))
    assert {"become-lab-voter", "become-lab-rater", "become-lab-last-row"} <= set(before)
    assert before == after
    assert set(before.values()) == {tiny_services.settings.browser_secret}
