"""A soak of the production shape: `deploy/cluster.py` (nginx, two serve and one api process, on
PostgreSQL) under steady mixed traffic for many minutes, with every process's memory sampled.

    python bench/soak.py --minutes 30 [--clients 8] [--pgbouncer]

Each client is one user making add, list, update, complete and delete calls (so the table stays
small and memory growth is the server's, not the data's) and, now and then, a call for another
user, which must be a 403. The memory of each process is read from /proc every 15 s; after a
warm-up of a fifth of the run, growth beyond --max-growth-mb (default 8 MB) from the warm-up
sample to the end fails the run, as does any answer other than 200, 403 or 503, or a leak.
Everything goes to 127.0.0.1; the cluster and its database are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from todo_mcp.config import Settings  # noqa: E402
from todo_mcp.services.tokens import TokenService  # noqa: E402

SAMPLE_SECONDS = 15.0
ADMIN_URL = os.environ.get("SOAK_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Load:
    url: str
    tokens: dict[str, str]
    statuses: Counter[int] = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, user: str) -> None:
        others = [other for other in self.tokens if other != user]
        rng = random.Random(user)  # noqa: S311 - which calls to make, not a secret
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as http:
            number = 0
            while not self.stopping.is_set():
                number += 1
                added = self._call(http, "add_task", {"user_id": user, "title": f"{user}/{number}"})
                task = (added or {}).get("data", {}).get("task_id")
                listed = self._call(http, "list_tasks", {"user_id": user, "limit": 20})
                for item in (listed or {}).get("data", {}).get("tasks", []):
                    if not str(item.get("title", "")).startswith(user + "/"):
                        with self.lock:
                            self.leaks.append(f"{user} saw {item.get('title')!r}")
                if task is not None:
                    self._call(http, "update_task", {"user_id": user, "task_id": task, "priority": "high"})
                    self._call(http, "complete_task", {"user_id": user, "task_id": task})
                    self._call(http, "delete_task", {"user_id": user, "task_id": task})
                if rng.random() < 0.2:
                    other = rng.choice(others)
                    answer = http.post("/tools/list_tasks", json={"user_id": other})
                    with self.lock:
                        self.statuses[answer.status_code] += 1
                        if answer.status_code != 403:
                            self.leaks.append(f"{user} -> {other}: {answer.status_code}")

    def _call(self, http: httpx.Client, tool: str, arguments: dict[str, object]) -> dict[str, Any] | None:
        try:
            answer = http.post(f"/tools/{tool}", json=arguments)
        except httpx.TransportError:
            with self.lock:
                self.statuses[0] += 1
            return None
        with self.lock:
            self.statuses[answer.status_code] += 1
        body: dict[str, Any] = answer.json()
        return body if answer.status_code == 200 else None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pgbouncer", action="store_true")
    parser.add_argument("--max-growth-mb", type=float, default=8.0)
    options = parser.parse_args()

    database = f"todo_soak_{secrets.token_hex(4)}"
    database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    secret = secrets.token_urlsafe(32)
    directory = Path(tempfile.mkdtemp(prefix="todo-mcp-soak-"))
    env = {**os.environ, "DATABASE_URL": database_url, "JWT_SECRET": secret}
    cluster = [sys.executable, str(ROOT / "deploy" / "cluster.py"), "--dir", str(directory)]
    port = 18000 + secrets.randbelow(1000)
    args = ["start", "--serve", "2", "--api", "1", "--port", str(port)]
    subprocess.run([*cluster, *args, *(["--pgbouncer"] if options.pgbouncer else [])], env=env, check=True)
    try:
        state = json.loads((directory / "state.json").read_text())
        users = [f"soak{n}" for n in range(options.clients)]
        todo_mcp = ROOT / ".venv" / "bin" / "todo-mcp"
        for user in users:
            subprocess.run(
                [str(todo_mcp), "users", "add", user, "--email", f"{user}@example.com"],
                env=env,
                check=True,
                capture_output=True,
            )
        issuer = TokenService(Settings(_env_file=None, jwt_secret=secret))
        tokens = {user: issuer.issue(user, timedelta(days=1)) for user in users}
        load = Load(state["url"], tokens)
        threads = [threading.Thread(target=load.client, args=(user,), daemon=True) for user in users]
        for thread in threads:
            thread.start()
        processes = {f"{p['kind']}:{p['port']}": p["pid"] for p in state["processes"]}
        samples: list[tuple[float, dict[str, float]]] = []
        started = time.monotonic()
        end = started + options.minutes * 60
        while time.monotonic() < end:
            time.sleep(SAMPLE_SECONDS)
            sample = {name: rss_mb(pid) for name, pid in processes.items()}
            samples.append((time.monotonic() - started, sample))
            with load.lock:
                calls = sum(load.statuses.values())
            print(
                f"{samples[-1][0] / 60:5.1f} min  {calls:8d} calls  "
                + "  ".join(f"{name} {mb:6.1f} MB" for name, mb in sample.items()),
                flush=True,
            )
        load.stopping.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        subprocess.run([*cluster, "stop"], env=env, check=False)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        shutil.rmtree(directory, ignore_errors=True)

    warm = samples[max(0, len(samples) // 5 - 1)]
    last = samples[-1]
    print(f"\nanswers: {dict(sorted(load.statuses.items()))}")
    problems = [f"answered {status}" for status in load.statuses if status not in (200, 403, 503)]
    problems += load.leaks[:5]
    for name in processes:
        growth = last[1][name] - warm[1][name]
        print(
            f"{name}: {warm[1][name]:.1f} MB at {warm[0] / 60:.1f} min -> "
            f"{last[1][name]:.1f} MB at {last[0] / 60:.1f} min ({growth:+.1f} MB)"
        )
        if growth > options.max_growth_mb:
            problems.append(f"{name} grew {growth:.1f} MB after the warm-up")
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
