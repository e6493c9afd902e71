"""The DDS environment the bench and its targets share, and whether our node can be started."""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path

from aria_perception.bench.config import BenchConfig

NODE_MODULE = "aria_perception.ros.node"
#: Domain ids whose DDS ports stay below Linux's ephemeral range (ROS 2 docs: 0-101, 215-232).
SAFE_DOMAIN_IDS = (*range(1, 102), *range(215, 233))


def node_available() -> str | None:
    """None when our node can be started; otherwise what is missing, in words."""
    try:
        spec = importlib.util.find_spec(NODE_MODULE)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        return (
            f"the perception node ({NODE_MODULE.replace('.', '/')}.py, console script "
            "perception_node) is not installed yet"
        )
    return None


def dds_environment(config: BenchConfig) -> tuple[dict[str, str], list[str]]:
    """Environment for the bench and its children, and notes about what was chosen."""
    env = dict(os.environ)
    notes = []
    if config.domain_id is not None:
        domain = config.domain_id
    elif config.attach:
        domain = int(env.get("ROS_DOMAIN_ID", "0") or 0)
    else:
        # A domain of its own keeps other nodes on this machine out of the measurement.
        current = env.get("ROS_DOMAIN_ID")
        domain = random.choice([d for d in SAFE_DOMAIN_IDS if str(d) != current])
    env["ROS_DOMAIN_ID"] = str(domain)
    if not config.attach:
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if config.fastdds_profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(config.fastdds_profile).resolve())
        env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    elif config.dds_transport == "large_data":
        if env.get("FASTDDS_BUILTIN_TRANSPORTS") or env.get("FASTDDS_DEFAULT_PROFILES_FILE"):
            notes.append(
                "Fast DDS transport left as the environment chose it "
                f"(FASTDDS_BUILTIN_TRANSPORTS={env.get('FASTDDS_BUILTIN_TRANSPORTS', '')!r}, "
                f"FASTDDS_DEFAULT_PROFILES_FILE={env.get('FASTDDS_DEFAULT_PROFILES_FILE', '')!r})"
            )
        else:
            env["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    env["PYTHONUNBUFFERED"] = "1"
    return env, notes
