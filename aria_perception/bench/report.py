"""``report.json``: the typed record of one bench invocation, written and read back.

The schema is the record classes themselves: :class:`Report` and its parts here, the per-run
records in :mod:`.run_record`, :class:`~.criteria.CriterionResult` and the comparisons in
:mod:`.comparison`. Their fields are the JSON keys. :func:`read_report` reads files written under
the same ``SCHEMA`` back into records (an unknown or missing key is a :class:`ReportError`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aria_perception.bench.comparison import Comparison, Overhead
from aria_perception.bench.criteria import Criteria, CriterionResult, Verdict
from aria_perception.bench.errors import ReportError
from aria_perception.bench.json_record import OMIT_EMPTY, JsonRecord
from aria_perception.bench.run_record import RunRecord

SCHEMA = "aria_perception.bench.report/1"


@dataclass(frozen=True)
class Host(JsonRecord):
    """The machine the bench ran on."""

    hostname: str = ""
    platform: str = ""
    python: str = ""
    cpu_count: int | None = None
    rmw: str = ""


@dataclass(frozen=True)
class Settings(JsonRecord):
    """How the invocation replayed frames (the options, and the DDS environment chosen).

    ``rate`` is the paced phase's pacing as shown (``30 Hz``, ``recorded`` or ``max``);
    ``transport`` is ``raw`` or ``compressed``.
    """

    preset: str = "custom"
    frames: int = 0
    warmup: int = 0
    throughput_frames: int = 0
    rate: str = ""
    window: int = 2
    qos: str = "reliable"
    qos_depth: int = 5
    result_timeout_s: float = 5.0
    startup_timeout_s: float = 180.0
    transport: str = "raw"
    depth: bool = False
    save_images: int = 0
    random_weights_allowed: bool = True
    params_file: str | None = None
    params: list[str] = field(default_factory=list)
    compare_params: list[str] | None = None
    attach: bool = False
    domain_id: int | None = None
    discovery_range: str | None = None
    fastdds_builtin_transports: str | None = None
    fastdds_profiles_file: str | None = None
    criteria: Criteria = Criteria()


@dataclass(frozen=True)
class InputInfo(JsonRecord):
    """The frames replayed."""

    source: str = ""
    topic: str = ""
    msgtype: str = ""
    width: int = 0
    height: int = 0
    encoding: str = ""
    frames_loaded: int = 0
    frames_available: int = 0
    bytes_per_frame: int = 0
    recorded_fps: float | None = None


@dataclass(frozen=True)
class StreamInput(JsonRecord):
    """One camera stream of a multi-stream invocation (``input`` then describes the first)."""

    name: str = ""
    topic: str = ""
    node_name: str = ""
    width: int = 0
    height: int = 0
    encoding: str = ""
    frames_loaded: int = 0
    bytes_per_frame: int = 0
    recorded_fps: float | None = None


@dataclass(frozen=True)
class Files(JsonRecord):
    """What the invocation wrote (images relative to the output directory)."""

    json: str | None = None
    md: str | None = None
    plot: str | None = None
    images: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


@dataclass
class Report(JsonRecord):
    """One bench invocation: settings, input, every run, comparisons, criteria and verdict.

    Attributes:
        schema: ``SCHEMA`` of the code that wrote it.
        created: UTC time, ISO 8601.
        command: The command line.
        host: The machine.
        settings: How frames were replayed.
        input: The frames.
        runs: Echo reference first, then the node runs.
        vs_echo: Node run label -> its figures over the echo reference.
        compare: Compare mode's two node runs side by side.
        criteria: Every criterion checked on every node run.
        verdict: Over all criteria.
        notes: Things a reader should know (random weights, DDS environment).
        files: What was written.
        streams: The camera streams of a multi-stream invocation (left out for one stream).
        streams_vs_echo: Node run label -> stream -> its figures over the echo reference's
            same stream (left out for one stream).
    """

    schema: str = SCHEMA
    created: str = ""
    command: str = ""
    host: Host = Host()
    settings: Settings = Settings()
    input: InputInfo = InputInfo()
    runs: list[RunRecord] = field(default_factory=list)
    vs_echo: dict[str, Overhead] = field(default_factory=dict)
    compare: Comparison | None = None
    criteria: list[CriterionResult] = field(default_factory=list)
    verdict: Verdict = Verdict.NOT_JUDGED
    notes: list[str] = field(default_factory=list)
    files: Files = Files()
    streams: list[StreamInput] = field(default_factory=list, metadata=OMIT_EMPTY)
    streams_vs_echo: dict[str, dict[str, Overhead]] = field(
        default_factory=dict, metadata=OMIT_EMPTY
    )

    @property
    def echo(self) -> RunRecord | None:
        """The echo reference's run, if there was one."""
        return next((r for r in self.runs if not r.is_node), None)

    @property
    def node_runs(self) -> list[RunRecord]:
        """The runs of the perception node."""
        return [r for r in self.runs if r.is_node]


def write_report(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir``.

    Raises:
        ReportError: The directory or a file cannot be written.
    """
    from aria_perception.bench.render import markdown

    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.to_dict(), indent=1, allow_nan=False) + "\n")
        md_path.write_text(markdown(report))
    except OSError as err:
        raise ReportError(f"cannot write the report into {out_dir}: {err}") from err
    return json_path, md_path


def report_from_json(data: Any) -> Report:
    """A report from the parsed contents of a ``report.json``.

    Raises:
        ReportError: Another schema, or keys that do not fit the records.
    """
    if not isinstance(data, dict):
        raise ReportError("report.json must hold one JSON object")
    if data.get("schema") != SCHEMA:
        raise ReportError(f"report schema {data.get('schema')!r} is not {SCHEMA!r}")
    return Report.from_dict(data, "report")


def read_report(path: Path) -> Report:
    """Read a ``report.json`` (or the directory holding one) written by this bench.

    Raises:
        ReportError: The file cannot be read, is not JSON, or does not fit the schema.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportError(f"cannot read {path}: {err}") from err
    return report_from_json(data)
