"""The facilitator's session: what every participant's page starts from during a meeting."""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from pipelines.core.errors import InputError


class SessionError(InputError):
    """A session setting names a style or method this app does not have."""


@dataclass(frozen=True)
class SessionConfig:
    """What a facilitator sets for a meeting; every participant's page starts from it."""

    session_tag: str = ""
    styles: tuple[str, ...] = ()  # empty = all styles
    methods: tuple[str, ...] = ("raw", "template", "learned")
    blind: bool = False
    deck_dir: str = ""  # a loaded deck's folder: raters get its rows instead of live renders
    deck_id: str = ""


class SessionBoard:
    """The current facilitator session, persisted so a restart keeps the meeting going."""

    def __init__(self, path: Path, styles: Collection[str], methods: Collection[str]) -> None:
        self._path = path
        self._styles = styles  # what a session may name
        self._methods = methods
        self._lock = threading.Lock()
        self._config = self._read()

    def _read(self) -> SessionConfig:
        try:
            raw = json.loads(self._path.read_text())
            return SessionConfig(
                session_tag=str(raw.get("session_tag", "")),
                styles=tuple(raw.get("styles", ())),
                methods=tuple(raw.get("methods", SessionConfig.methods)),
                blind=bool(raw.get("blind", False)),
                deck_dir=str(raw.get("deck_dir", "")),
                deck_id=str(raw.get("deck_id", "")),
            )
        except (OSError, ValueError, TypeError):
            return SessionConfig()

    def get(self) -> SessionConfig:
        """The live session."""
        with self._lock:
            return self._config

    def start(
        self, session_tag: str, styles: Iterable[str], methods: Iterable[str], blind: bool
    ) -> SessionConfig:
        """Validate and make live a new session; raises :class:`SessionError` naming a bad value."""
        styles, methods = tuple(styles), tuple(methods)
        if not methods:
            raise SessionError("Tick at least one method for the session.")
        for kind, given, known in (
            ("style", styles, self._styles),
            ("method", methods, self._methods),
        ):
            for name in given:
                if name not in known:
                    raise SessionError(f"unknown {kind} {name!r}: use one of {', '.join(known)}")
        current = self.get()  # a loaded deck stays loaded when the session is updated
        config = SessionConfig(
            " ".join(session_tag.split()),
            styles,
            methods,
            bool(blind),
            current.deck_dir,
            current.deck_id,
        )
        self.set(config)
        return config

    def set_deck(self, deck_dir: str, deck_id: str, blind: bool) -> SessionConfig:
        """Load (or, with empty ids, unload) a deck for the live session, keeping the rest."""
        config = replace(self.get(), deck_dir=deck_dir, deck_id=deck_id, blind=bool(blind))
        self.set(config)
        return config

    def end(self) -> SessionConfig:
        """End the live session: pages open untagged, with the default methods, not blind."""
        config = SessionConfig()
        self.set(config)
        return config

    def set(self, config: SessionConfig) -> None:
        """Make ``config`` live and write it to disk atomically."""
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(config)))
            tmp.replace(self._path)
            self._config = config
