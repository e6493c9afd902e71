#!/usr/bin/env bash
# Re-pin requirements/lock.txt: install requirements/top.txt into a scratch venv and record every
# pip-installed distribution with its version.
set -euo pipefail
# requirements/no-deps.txt stays out of the lock: its packages are installed without their
# declared dependencies, and pinning those here would install them.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-python3.11}" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q -r "$root/requirements/top.txt"
{
  echo "# Every Python distribution of the development environment, pinned (tools/setup_env.sh)."
  echo "# Regenerate with: make lock (after changing requirements/top.txt)."
  "$tmp/venv/bin/python" - <<'PY'
import importlib.metadata as md
pins = {f"{d.metadata['Name']}=={d.version}" for d in md.distributions()
        if (d.read_text("INSTALLER") or "").strip() == "pip" and d.metadata["Name"] != "pip"}
print("\n".join(sorted(pins, key=str.lower)))
PY
} >"$root/requirements/lock.txt"
echo "lock: wrote requirements/lock.txt"
