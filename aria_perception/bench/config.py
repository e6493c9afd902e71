"""What one bench invocation does: every option of the ``bench`` command, checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aria_perception.bench.criteria import Criteria
from aria_perception.bench.errors import UsageError
from aria_perception.bench.pacing import check_pacing
from aria_perception.bench.sample import SampleSpec


@dataclass
class BenchConfig:
    """Everything one invocation does (the CLI fills it; tests build it directly).

    Attributes:
        preset: Name shown in the report (``smoke``, ``benchmark`` or ``custom``).
        frames: Frames in the paced (latency) phase.
        warmup: Closed-loop frames before measuring (not counted).
        throughput_frames: Frames in the max-rate phase (0 skips it).
        rate: Paced phase rate: Hz, ``"recorded"`` or ``"max"``.
        window: Frames in flight in max-rate pacing.
        qos: Publisher reliability (``reliable``, ``best_effort``, ``sensor_data``).
        qos_depth: Publisher history depth.
        result_timeout_s: An answer later than this counts the frame as dropped.
        startup_timeout_s: Time a target gets to subscribe and answer its first frame.
        bag: Bag to replay; None generates a sample sequence from ``sample``.
        topic: Image topic in the bag (None: the only one).
        topics: Several image topics of the bag, replayed together (multi-stream).
        slam_size: (width, height) of the SLAM cameras of the ``headset`` preset.
        sample: Sample sequence made when there is no bag.
        transport: ``raw`` or ``compressed`` input (None: as the frames come).
        jpeg_quality: Quality when raw frames are compressed for ``compressed`` input.
        echo: Run the echo reference.
        node: Run our node (started here, or attached when ``attach``).
        attach: Use a running node instead of starting one.
        namespace: Attached node's namespace (its relative topics resolve under it).
        node_name: Node name (remapped when started here; diagnostics are matched on it).
        node_pid: Attached node's pid for CPU and memory figures.
        image_topic: Attached node's input topic (default: found under ``namespace``).
        output_prefix: Prefix of the attached node's outputs (``<prefix>/detections``;
            default: found under ``namespace``, private or relative).
        node_command: Command that starts the node (before ``--ros-args``).
        params_file: ``--params-file`` for the node.
        params: ``key:=value`` parameters for the node.
        compare_params: A second parameter set for compare mode (None: no compare run).
        labels: Labels of the node run and the compare run.
        random_weights: Pass ``allow_random_weights:=true`` (random init only where official
            weights are missing).
        depth: Subscribe to ``depth/raw`` and check it (the node then computes it).
        save_images: Keep this many overlay + normalized depth images of our node as PNG.
        domain_id: ROS_DOMAIN_ID for the bench and its children (None: a free one).
        dds_transport: ``large_data`` sets FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA on both sides
            unless the environment already chose a transport; ``env`` leaves it alone.
        fastdds_profile: Fast DDS XML profile for both sides (FASTDDS_DEFAULT_PROFILES_FILE);
            replaces the builtin-transport setting.
        criteria: Pass/fail limits.
        out: Output directory.
        progress: Show progress bars.
        command: The command line, for the report.
    """

    preset: str = "custom"
    frames: int = 100
    warmup: int = 10
    throughput_frames: int = 100
    rate: str | float = 30.0
    window: int = 2
    qos: str = "reliable"
    qos_depth: int = 5
    result_timeout_s: float = 5.0
    startup_timeout_s: float = 180.0
    bag: Path | None = None
    topic: str | None = None
    topics: list[str] | None = None
    slam_size: tuple[int, int] = (640, 480)
    sample: SampleSpec = field(default_factory=SampleSpec)
    transport: str | None = None
    jpeg_quality: int = 90
    echo: bool = True
    node: bool = True
    attach: bool = False
    namespace: str = "/"
    node_name: str = "perception"
    node_pid: int | None = None
    image_topic: str | None = None
    output_prefix: str | None = None
    node_command: list[str] | None = None
    params_file: Path | None = None
    params: list[str] = field(default_factory=list)
    compare_params: list[str] | None = None
    labels: tuple[str, str] = ("node", "node_b")
    random_weights: bool = True
    depth: bool = False
    save_images: int = 0
    domain_id: int | None = None
    dds_transport: str = "large_data"
    fastdds_profile: Path | None = None
    criteria: Criteria = field(default_factory=Criteria)
    out: Path = Path("bench_out")
    progress: bool = True
    command: str = ""

    @property
    def multi_stream(self) -> bool:
        """Several camera streams at once: the ``headset`` preset, or ``topics``."""
        return self.preset == "headset" or bool(self.topics)

    def validate(self) -> None:
        """Refuse contradictory or out-of-range settings with a message naming the option."""
        if self.frames < 1:
            raise UsageError(f"--frames must be >= 1, got {self.frames}")
        if self.warmup < 0 or self.throughput_frames < 0:
            raise UsageError("--warmup and --throughput-frames must be >= 0")
        try:
            check_pacing(self.rate)
        except UsageError as err:
            raise UsageError(f"--{err}") from err
        if self.transport not in (None, "raw", "compressed"):
            raise UsageError(f"--transport must be raw or compressed, got {self.transport!r}")
        if self.dds_transport not in ("large_data", "env"):
            raise UsageError(
                f"--dds-transport must be large_data or env, got {self.dds_transport}"
            )
        if self.fastdds_profile is not None and not Path(self.fastdds_profile).is_file():
            raise UsageError(f"--fastdds-profile {self.fastdds_profile} is not a file")
        if self.domain_id is not None and not 0 <= self.domain_id <= 232:
            raise UsageError(f"--domain-id must be 0..232, got {self.domain_id}")
        if not (self.echo or self.node):
            raise UsageError("nothing to run: both the echo reference and the node are off")
        if (self.image_topic or self.output_prefix) and not self.attach:
            raise UsageError("--image-topic and --output-prefix go with --attach")
        if self.attach and self.compare_params is not None:
            raise UsageError("compare mode starts the node twice; it cannot attach (--attach)")
        if self.labels[0] == self.labels[1] or "echo" in self.labels:
            raise UsageError(f"run labels must differ and not be 'echo': {self.labels}")
        self._validate_streams()
        for p in [*self.params, *(self.compare_params or [])]:
            if ":=" not in p:
                raise UsageError(f"parameter {p!r} must be written key:=value")

    def _validate_streams(self) -> None:
        if self.topics is not None and self.bag is None:
            raise UsageError("--topics chooses topics of a bag: add --bag")
        if self.topic is not None and self.multi_stream:
            raise UsageError("--topic replays one stream; several streams take --topics")
        if not self.multi_stream:
            return
        refused = {
            "--attach": self.attach,
            "--depth": self.depth,
            "--save-images": self.save_images > 0,
        }
        given = [name for name, on in refused.items() if on]
        if given:
            raise UsageError(f"{', '.join(given)}: one stream only (this run has several)")
