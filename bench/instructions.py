"""Machine instructions per tool call of the MCP app, counted by Valgrind: the same on a busy machine.

    python -m bench.instructions --checkout . --checkout ../other-checkout

`bench.cpu`'s CPU time per call moves by 5-20% from run to run on this shared machine, so a
change of a few percent takes many alternating runs to see, and some days none will do. The
instructions the process executes barely move (0.3% between runs): this runs `bench.cpu`
under Valgrind's callgrind twice per checkout, with `--base-calls` and with `--base-calls` +
`--calls` calls, and prints the difference per call, which leaves start-up and warm-up out. The
checkouts run at once, since load does not change the count. Instructions are not time: code
that runs cold (between requests, after the database's answer) costs more time per
instruction than a tight loop, so use this to compare versions of the same code path, and
`bench.cpu` or `make bench` for what a call costs. Needs Debian's `valgrind`; a run of 1,200
calls takes about three minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(checkout: Path, calls: int, options: argparse.Namespace, scratch: Path) -> int:
    """Instructions of one `bench.cpu` run of `calls` calls with `checkout`'s code."""
    log = Path(tempfile.mkstemp(dir=scratch, suffix=".log")[1])
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        f"--log-file={log}",
        sys.executable,
        "-m",
        "bench.cpu",
        f"--tool={options.tool}",
        f"--protocol={options.protocol}",
        f"--database={options.database}",
        f"--concurrency={options.concurrency}",
        f"--calls={calls}",
        "--core=-1",
    ]
    # The same hashes every run; the checkout's code ahead of the installed one.
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": f"{checkout / 'src'}{os.pathsep}{checkout}"}
    subprocess.run(
        command, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    found = COLLECTED.search(log.read_text())
    if found is None:
        raise RuntimeError(f"callgrind reported no count; see {log}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, action="append", help="a checkout to measure (repeatable)")
    parser.add_argument("--tool", choices=("add_task", "list_tasks"), default="add_task")
    parser.add_argument("--protocol", choices=("2025-11-25", "2026-07-28"), default="2026-07-28")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--base-calls", type=int, default=192)
    parser.add_argument("--calls", type=int, default=1008, help="calls counted, over the base run's")
    options = parser.parse_args()
    checkouts = [path.resolve() for path in options.checkout or [Path.cwd()]]
    runs = [
        (checkout, count)
        for checkout in checkouts
        for count in (options.base_calls, options.base_calls + options.calls)
    ]
    with (
        tempfile.TemporaryDirectory(prefix="todo-instructions-") as scratch,
        ThreadPoolExecutor(len(runs)) as pool,
    ):
        counted = pool.map(lambda run: instructions(run[0], run[1], options, Path(scratch)), runs)
        counts = dict(zip(runs, counted, strict=True))
    for checkout in checkouts:
        base, more = (
            counts[(checkout, options.base_calls)],
            counts[(checkout, options.base_calls + options.calls)],
        )
        print(
            f"{checkout}: {(more - base) / options.calls:,.0f} instructions per {options.tool} call",
            flush=True,
        )


if __name__ == "__main__":
    main()
