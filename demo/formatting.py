"""Markdown for captions and "why this prompt" of one comparison output, and :func:`plain_md`
for any text a person typed (prompts, session tags, names, comments) that Markdown shows.

Participants read these: measures are named in plain words (:data:`MEASURE_WORDS`), and server
paths and setting names are hidden (:func:`hide_server_detail`); staff read those in the Staff
tab, programs in the API's JSON."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pipelines.core.measures import Measures
    from pipelines.core.results import MethodOutput

# CommonMark lets any ASCII punctuation be backslash-escaped; these start emphasis, code, links,
# images, headings, lists, tables, strikethrough, autolinks (":") or Gradio's $$ LaTeX
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:])")
# a file path on the server (/x/y, ~/x, C:\x): not after a word, a dot or a URL's "://"
_PATH = re.compile(r"(?<![\w.:/~\\])(?:~?/|[A-Za-z]:\\)[^\s,;()'\"]*[\w/\\][^\s,;()'\"]*")
_SETTING = re.compile(r"\bBECOME_[A-Z0-9_]+(?:=[^\s,;:)]*)?")

# each measure as participants read it: the short name under a picture, and what it says
MEASURE_WORDS: dict[str, tuple[str, str]] = {
    "identity": ("face", "how much the face looks like the selfie's"),
    "style_text": ("style", "how much the picture looks like the style's description"),
    "style_ref": ("refs", "how much it looks like the style's reference images"),
    "prompt": ("prompt", "how well it matches the base prompt"),
    "learned": ("predicted", "how well the learned model expects people to rate this prompt"),
    "identity_face_pack": ("face (pack)", "the same face check by the face-detection model"),
    "pickscore": ("pick", "how much people would prefer this picture for the prompt (PickScore)"),
    "hpsv2": ("hps", "how much people would prefer this picture (HPSv2)"),
}
# the caption line's measures (Measures.summary), as its legend names them
_LEGEND = {
    "identity": "**face**: looks like the selfie",
    "style_text": "**style**: looks like the style",
    "style_ref": "**refs**: looks like the style's reference images",
    "prompt": "**prompt**: matches the base prompt",
    "pickscore": "**pick**: how much people would prefer it (a model trained on people's choices)",
    "hpsv2": "**hps**: the same, by a second such model",
}


def measure_legend(measures: Iterable[Measures | None]) -> str:
    """What the numbers under the pictures mean: only the measures they show; "" for none."""
    shown = [m for m in measures if m is not None]
    measured = {name for m in shown for name in _LEGEND if m.get(name).value is not None}
    named = [words for name, words in _LEGEND.items() if name in measured]
    if not named:
        return ""
    return (
        "The numbers under each picture are the computer's own checks (higher = closer; not a "
        "verdict, your rating is what counts): " + " · ".join(named) + "."
    )


# measures a deployment may not run (a second face judge, the preference models): listed for
# participants only where they have a value; why not is in the API's JSON and the exports
_OPTIONAL = frozenset({"identity_face_pack", "pickscore", "hpsv2"})
_OWN_SCORE = "'s own ranking score"  # the service's trace step for a method's own scale
NOT_HERE = "not available on this server right now (the organisers can see why in the Staff tab)."
# an ensemble's pick: "rank 1/6 by learned z=-0.32, clip z=+1.97, own z=+0.00 (combined +0.66)"
_RANKED = re.compile(r"rank (\d+)/(\d+) by ((?:\w+ z=[+-]?[\d.]+(?:, )?)+)(?: \(combined [^)]*\))?")
_JUDGES = {
    "learned": "the learned model's prediction",
    "clip": "how close CLIP finds it to the style",
    "own": "its method's own score",
}
_TWO_STAGE = "two-stage: fast scorer, re-ranked"  # LearnedScorer.stage_label()


def plain_md(text: object) -> str:
    """``text`` as Markdown that shows exactly its characters, on one line.

    HTML is escaped (``<img>`` shows as text, never as an element) and Markdown control
    characters are backslash-escaped, so user text cannot add links, images, emphasis, table
    cells or headings. Newlines become spaces: a line break could end a list item.
    """
    one_line = " ".join(str(text).split())
    return _MARKDOWN.sub(r"\\\1", html.escape(one_line, quote=False))


def hide_server_detail(text: object) -> str:
    """``text`` without server file paths or setting names (``BECOME_…``): participants read
    it; the Staff tab and the API keep the detail."""
    text = _SETTING.sub("a server setting", str(text))
    return _PATH.sub("…", text)  # where on the server is for staff


def caption_md(out: MethodOutput, method: str | None, slot: str | None = None) -> str:
    """Caption under an image, which names its card (the image's own label is hidden: its
    toolbar cut long labels); ``method=None`` hides the method (blind mode).

    ``slot`` is the card's blind name ("Output A"): shown alone while blind, and as
    "Output A = raw" once revealed.
    """
    if method:
        name = f"**{plain_md(f'{slot} = {method}' if slot else method)}**"
    else:
        name = f"**{plain_md(slot or '?')}** · method hidden until you rate every output"
    if out.error:
        return f"{name} — ⚠️ {error_words(out)}"
    parts = [name]
    if method and out.same_as:
        parts.append(f"same prompt as {plain_md(out.same_as)}, so the same image")
    # the learned scorer's prediction is under "Why this prompt" with the other measures
    line = " · ".join(parts)
    if method and out.measures is not None:  # hidden in blind mode: numbers would anchor votes
        line += f"  \n{out.measures.summary()}"
    return line


def trace_md(out: MethodOutput, max_tokens: int = 77) -> str:
    """Why the final prompt is what it is: one line per part, where it came from and why; then
    the computer's checks, each named and explained. No paths or judges' model files: those
    are for staff (the API's JSON keeps them)."""
    if out.error:
        return error_words(out)
    if not out.trace:
        return "No trace."
    # the base prompt is user text (shown as typed); sources and reasons are escaped alike.
    # A method's own ranking score is on its own scale: the API keeps it, people skip it
    steps = [t for t in out.trace if not t.reason.endswith(_OWN_SCORE)]
    lines = [
        f"- “{plain_md(t.part)}” — {plain_md(plain_source(t.source))}: "
        f"{plain_md(plain_reason(hide_server_detail(t.reason)))}"
        for t in steps
    ]
    if out.tokens is not None:
        lines.append(
            f"- {out.tokens} of {max_tokens} text-encoder tokens used (the most the model reads)"
        )
    if out.measures is not None:
        lines += ["", "The computer's checks (higher = closer; your rating is what counts):"]
        unmeasured = []
        for name, (label, meaning) in MEASURE_WORDS.items():
            m = out.measures.get(name)
            if m.value is None:  # why not (a model id, a missing cache) is for staff and the API
                if name not in _OPTIONAL:
                    unmeasured.append(label)
                continue
            lines.append(f"- {label}: {m.value:+.2f}, {meaning}")
        if unmeasured:
            lines.append(f"- not checked for this picture: {', '.join(unmeasured)}")
    return "\n".join(lines)


def error_words(out: MethodOutput) -> str:
    """Why an output has no picture, for participants: the safety checker's own words (they are
    written for them); anything else, that the method cannot run here (why, with model ids and
    commands, is for the Staff tab and the API's JSON)."""
    if out.flagged:
        return plain_md(hide_server_detail(out.error))
    return NOT_HERE


def plain_source(source: str) -> str:
    """Where a prompt part came from ("ensemble <- inversion" reads "ensemble, from inversion")."""
    return hide_server_detail(source.replace(" <- ", ", from "))


def _and(words: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return " and ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


def plain_reason(reason: str) -> str:
    """A trace step's reason in words a participant reads: an ensemble's rank without its
    z-scores, the learned ranking without model names (the API's JSON keeps both)."""
    found = _RANKED.search(reason)
    if found:
        rank, total, by = found.groups()
        judges = [words for key, words in _JUDGES.items() if f"{key} z=" in by]
        reason = (
            reason[: found.start()]
            + f"ranked {rank} of {total} candidates by "
            + (_and(judges) or "the methods' scores")
            + reason[found.end() :]
        )
    if reason.startswith(_TWO_STAGE):
        return "a quick scorer picks the additions, a second model re-reads the whole prompt"
    return reason
