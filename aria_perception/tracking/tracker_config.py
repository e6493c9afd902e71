"""Which of Ultralytics' shipped trackers to run, with which settings (no torch imported).

The trackers and their default settings ship with Ultralytics: one YAML per tracker in
``ultralytics/cfg/trackers``. They are found on disk with ``importlib.util.find_spec``, which
locates the package without running it, so listing them and checking a configuration costs
no torch import. A ``tracker.config`` file overrides the shipped defaults of its type key by
key; see "Tracking" in docs/design.md.
"""

from __future__ import annotations

import importlib.util
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from aria_perception.errors import ConfigError

__all__ = [
    "DEFAULT_TRACKER",
    "NO_TRACKER",
    "TrackerConfig",
    "load_tracker_config",
    "shipped_config_path",
    "shipped_trackers",
]

#: ``tracker.type`` that turns tracking off (no Ultralytics import, empty ids).
NO_TRACKER = "none"
#: ``tracker.type`` by default.
DEFAULT_TRACKER = "bytetrack"
#: Settings the node forces whatever a file says, and why.
_FORCED: dict[str, tuple[Any, str]] = {
    # Global motion compensation needs each frame as a BGR image in the node process (a decode
    # for compressed input, several ms of optical flow per frame): the node gives none.
    "gmc_method": ("none", "global motion compensation needs the image"),
}
#: Settings the node refuses to turn on: ReID needs another network (and the image) per frame.
_REFUSED_TRUE = ("with_reid",)


@cache
def _trackers_dir() -> Path | None:
    """``ultralytics/cfg/trackers`` of the installed Ultralytics (None when it is missing)."""
    try:
        spec = importlib.util.find_spec("ultralytics")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "cfg" / "trackers"
        if folder.is_dir():
            return folder
    return None


@cache
def shipped_trackers() -> tuple[str, ...]:
    """The tracker types the installed Ultralytics ships (sorted; empty without Ultralytics)."""
    folder = _trackers_dir()
    if folder is None:
        return ()
    return tuple(sorted(p.stem for p in folder.glob("*.yaml")))


def shipped_config_path(tracker_type: str) -> Path:
    """The shipped default settings of ``tracker_type``.

    Raises:
        ConfigError: ``tracker_type`` is not a shipped tracker (the message lists them).
    """
    if tracker_type not in shipped_trackers():
        raise ConfigError(
            f"tracker.type must be {NO_TRACKER!r} or a tracker Ultralytics ships "
            f"({', '.join(shipped_trackers()) or 'none found: is ultralytics installed?'}); "
            f"got {tracker_type!r}"
        )
    folder = _trackers_dir()
    assert folder is not None
    return folder / f"{tracker_type}.yaml"


@dataclass(frozen=True)
class TrackerConfig:
    """One tracker's type and settings, checked against the shipped defaults of that type.

    Attributes:
        tracker_type: a shipped tracker type, or ``none``.
        settings: every setting of the type (shipped defaults, overridden by the file);
            empty for ``none``.
        source: where the overrides came from (the file, or ``shipped defaults``).
        forced: the settings the node set whatever the file said (name -> why).
    """

    tracker_type: str = NO_TRACKER
    settings: Mapping[str, Any] = field(default_factory=dict)
    source: str = "shipped defaults"
    forced: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """False for ``none``."""
        return self.tracker_type != NO_TRACKER

    def describe(self) -> str:
        """One line for the log: type, source and the main thresholds."""
        if not self.enabled:
            return "tracking off (tracker.type none)"
        keys = ("track_high_thresh", "track_low_thresh", "new_track_thresh", "track_buffer")
        shown = ", ".join(f"{k}={self.settings[k]}" for k in keys if k in self.settings)
        return f"{self.tracker_type} from {self.source} ({shown})"


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    import yaml  # PyYAML, a dependency of Ultralytics and of ROS's launch tooling

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"{what}: cannot read {str(path)!r}: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{what}: {str(path)!r} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigError(f"{what}: {str(path)!r} must hold a mapping of setting names to values")
    return data


def _check_value(name: str, value: Any, default: Any, path: str) -> Any:
    """``value`` for setting ``name``, of the type of its shipped ``default``."""
    where = f"tracker.config {path!r}: {name}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        if value < 0:
            raise ConfigError(f"{where} must not be negative, got {value!r}")
        return value
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def load_tracker_config(tracker_type: str, path: str = "") -> TrackerConfig:
    """The settings of ``tracker_type``: the shipped defaults, overridden by the file ``path``.

    Args:
        tracker_type: ``none`` or a shipped tracker type (``bytetrack``, ``botsort``, ...).
        path: a tracker YAML whose keys override the shipped defaults; empty = the defaults.
            Its ``tracker_type``, when present, must be ``tracker_type``.

    Raises:
        ConfigError: an unknown type (the shipped ones are listed), a missing or unreadable
            file, invalid YAML, an unknown setting (the known ones are listed), a value of the
            wrong type, or ``with_reid: true``.
    """
    if tracker_type == NO_TRACKER:
        return TrackerConfig()
    defaults = _read_yaml(shipped_config_path(tracker_type), "tracker.type")
    settings = dict(defaults)
    source = "shipped defaults"
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"tracker.config: no such file {path!r}")
        given = _read_yaml(file, "tracker.config")
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ConfigError(
                f"tracker.config {path!r}: unknown setting(s) {unknown} for {tracker_type}; "
                f"known: {', '.join(sorted(defaults))}"
            )
        if given.get("tracker_type", tracker_type) != tracker_type:
            raise ConfigError(
                f"tracker.config {path!r} is for tracker_type {given['tracker_type']!r}, but "
                f"tracker.type is {tracker_type!r}"
            )
        for name, value in given.items():
            settings[name] = _check_value(name, value, defaults[name], path)
        source = str(file)
    for name in _REFUSED_TRUE:
        if settings.get(name) is True:
            raise ConfigError(
                f"tracker.config {path!r}: {name}: true is not supported (ReID needs another "
                "network and the image in the node process)"
            )
    forced = {}
    for name, (value, why) in _FORCED.items():
        if name in settings:
            settings[name] = value
            forced[name] = f"{value} ({why})"
    return TrackerConfig(tracker_type, types.MappingProxyType(settings), source, forced)
