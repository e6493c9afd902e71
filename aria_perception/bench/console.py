"""What the bench's command lines share: exit statuses, errors as one line, ``--json`` files.

``bench``, ``bench sample``, ``bench echo``, ``engine_bench`` and the transport benchmark all
turn a :class:`~.errors.BenchError` into one line ``<prog>: error: <message>`` on stderr and
exit status 2 (a user's mistake never prints a traceback), and argparse's own usage errors exit
2 as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

from aria_perception.bench.errors import BenchError

EXIT_OK, EXIT_FAILED_CRITERIA, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def one_line(err: BaseException) -> str:
    """The error's message on one line (white space runs, newlines included, become a space)."""
    return " ".join(str(err).split())


def print_error(prog: str, err: BaseException) -> int:
    """Print ``<prog>: error: <message>`` as one line on stderr.

    Returns:
        ``EXIT_ERROR``, the exit status that goes with it.
    """
    print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
    return EXIT_ERROR


def run_main(prog: str, body: Callable[[], int]) -> int:
    """Run a command's ``body``; a :class:`BenchError` it raises becomes one line and status 2.

    Ctrl-C or SIGTERM (once, :func:`interrupts_once`) ends it with "<prog>: interrupted" and
    status 130.

    Args:
        prog: The command's name, the start of the error line.
        body: Does the command's work and returns its exit status.

    Returns:
        ``body``'s exit status, or ``EXIT_ERROR``.
    """
    try:
        with interrupts_once():
            return body()
    except BenchError as err:
        return print_error(prog, err)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the body's clean-up has run on the way out
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def interrupts_once() -> Iterator[None]:
    """Ctrl-C or SIGTERM stops the command once, as a KeyboardInterrupt; later ones are ignored.

    The clean-up on the way out (stopping children, removing temporary files) then runs to its
    end, inside this context. A command that starts ROS must init rclpy without its signal
    handlers: they would shut the context down under the command, whose next ROS call would
    fail with a traceback.
    """
    stop = (signal.SIGINT, signal.SIGTERM)

    def interrupt(signum: int, frame: Any) -> None:
        for sig in stop:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in stop}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_command(
    parser: argparse.ArgumentParser, argv: list[str] | None, work: Callable[[Any], object]
) -> int:
    """Parse ``argv`` and run ``work(args)`` through :func:`run_main`; it exits 0 when done.

    Args:
        parser: The command's parser (``prog`` starts the error line).
        argv: The arguments, ``None`` for ``sys.argv``.
        work: Does the command's work with the parsed arguments; what it returns is not used.
    """
    args = parser.parse_args(argv)

    def body() -> int:
        work(args)
        return EXIT_OK

    return run_main(parser.prog, body)


def write_json(path: str, data: Any, indent: int) -> None:
    """Write ``data`` as JSON to ``path`` (a command's ``--json`` file).

    Raises:
        BenchError: The file cannot be written.
    """
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent)
    except OSError as err:
        raise BenchError(f"cannot write {path}: {err}") from err
