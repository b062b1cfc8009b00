"""`make cluster`: the production shape on one machine.

N `todo-mcp serve` processes and M `todo-mcp api` processes on ports of their own, behind nginx
(Debian's package) as the load balancer, on one PostgreSQL, optionally through PgBouncer in
transaction pooling mode. Everything it starts is recorded in the cluster directory (`.cluster`
by default: configuration, logs, pids, the generated JWT secret and metrics token, a Prometheus
scrape configuration), so `stop` stops exactly that. The processes log JSON lines (`LOG_FORMAT`)
and nginx logs each request with its request id and the process that answered it.

    python deploy/cluster.py start [--serve 2] [--api 1] [--port 8080] [--pgbouncer]
    python deploy/cluster.py stop
    python deploy/cluster.py status

DATABASE_URL (default: the database todo_cluster on 127.0.0.1:5432, made if missing) is the
direct URL: migrations run on it, and with --pgbouncer the servers reach it through the pooler.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TODO_MCP = Path(sys.executable).parent / "todo-mcp"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/todo_cluster"
START_DEADLINE_SECONDS = 30.0


def say(message: str) -> None:
    print(message, flush=True)


def _installed(program: str) -> str | None:
    return shutil.which(program) or (
        f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None
    )


def need(program: str, package: str) -> str:
    """The program's path; installed with apt when missing and this runs as root, else how to."""
    found = _installed(program)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        say(f"installing {package} (apt-get install {package})")
        install = ["apt-get", "install", "-y", "-q", package]
        if subprocess.run(install, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL, check=False)
            subprocess.run(install, stdout=subprocess.DEVNULL, check=False)
        found = _installed(program)
    if found is None:
        sys.exit(f"{program} is needed: install it with `sudo apt-get install {package}` (Debian/Ubuntu)")
    return found


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ensure_database(url: str) -> None:
    """Create the URL's database on its server when it does not exist."""
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database

    async def create() -> None:
        admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        connection = await asyncpg.connect(admin, timeout=10)
        try:
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await connection.execute(f'CREATE DATABASE "{name}"')
                say(f"created database {name}")
        finally:
            await connection.close()

    asyncio.run(create())


def as_postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start_pgbouncer(directory: Path, server_url: str) -> tuple[str, int]:
    """PgBouncer in transaction mode in front of the URL's server; its URL and pid."""
    from sqlalchemy.engine import make_url

    executable = need("pgbouncer", "pgbouncer")
    server = make_url(server_url)
    port = free_port()
    # A directory of its own: PgBouncer runs as the postgres user when this runs as root, and
    # must be able to reach its files wherever the cluster directory is.
    folder = Path(tempfile.mkdtemp(prefix="todo-mcp-pgbouncer-"))
    (directory / "pgbouncer").write_text(str(folder))
    (folder / "userlist.txt").write_text(f'"{server.username or "postgres"}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {folder / 'userlist.txt'}",
                "pool_mode = transaction",
                "default_pool_size = 20",
                "max_client_conn = 1000",
                # After a failed login (PostgreSQL restarting) PgBouncer refuses every client that
                # needs a new server connection for this long; its default of 15 s would keep
                # the service down well after the database is back.
                "server_login_retry = 1",
                f"logfile = {folder / 'pgbouncer.log'}",
                f"pidfile = {folder / 'pgbouncer.pid'}",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        for path in (folder, *folder.iterdir()):
            shutil.chown(path, user="postgres")
    subprocess.run(as_postgres_user([executable, "-d", str(folder / "pgbouncer.ini")]), check=True)
    pid = int(wait_for_file(folder / "pgbouncer.pid").read_text().strip())
    pooled = server.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    return pooled, pid


def wait_for_file(path: Path) -> Path:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            sys.exit(f"{path} did not appear")
        time.sleep(0.05)
    return path


def wait_healthy(url: str, process: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    import httpx

    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while True:
        if process is not None and process.poll() is not None:
            sys.exit(f"a process exited at start-up; see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{url} did not become healthy; see {log}")
        time.sleep(0.1)


def nginx_conf(directory: Path, port: int, serve_ports: list[int], api_ports: list[int]) -> str:
    prefix = directory / "nginx"
    upstream = "\n".join
    servers_mcp = upstream(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in serve_ports)
    servers_api = upstream(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in api_ports)
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""# Generated by deploy/cluster.py; see docs/DEPLOY.md.
{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    # One JSON object per request: its id (the processes log the same one), which process
    # answered (several when nginx retried on another) and how.
    log_format todo escape=json '{{"time":"$time_iso8601","request_id":"$request_id",'
        '"remote_addr":"$remote_addr","request":"$request","status":$status,'
        '"request_time":$request_time,"upstream":"$upstream_addr",'
        '"upstream_status":"$upstream_status","upstream_time":"$upstream_response_time"}}';
    access_log {prefix}/access.log todo;
    client_body_temp_path {prefix}/scratch/body;
    proxy_temp_path {prefix}/scratch/proxy;
    fastcgi_temp_path {prefix}/scratch/fastcgi;
    uwsgi_temp_path {prefix}/scratch/uwsgi;
    scgi_temp_path {prefix}/scratch/scgi;
    upstream todo_mcp {{
{servers_mcp}
        keepalive 32;
    }}
    upstream todo_api {{
{servers_api}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 2m;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Request-Id $request_id;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        # A process that is down, or stopping, is skipped; tool calls are POSTs, retried on the
        # next process only when the first could not be reached or failed before answering.
        proxy_next_upstream error timeout http_502 non_idempotent;
        proxy_next_upstream_tries 3;
        proxy_connect_timeout 2s;
        proxy_read_timeout 120s;
        location = /mcp {{ proxy_pass http://todo_mcp; }}
        location /tools/ {{ proxy_pass http://todo_mcp; }}
        # OAuth for remote MCP clients (docs/OAUTH.md): discovery, the endpoints, the pages.
        location /.well-known/ {{ proxy_pass http://todo_mcp; }}
        location ~ ^/(authorize|token|register|revoke)$ {{ proxy_pass http://todo_mcp; }}
        location /oauth/ {{ proxy_pass http://todo_mcp; }}
        location /connections {{ proxy_pass http://todo_mcp; }}
        location /api/ {{
            # The assistant's streamed answers go out as they are written.
            proxy_buffering off;
            proxy_pass http://todo_api;
        }}
        location /auth/ {{ proxy_pass http://todo_api; }}
        location = /health {{ proxy_pass http://todo_api; }}
        location = /ready {{ proxy_pass http://todo_api; }}
        location /docs {{ proxy_pass http://todo_api; }}
        location = /openapi.json {{ proxy_pass http://todo_api; }}
        # Scrape each process's /metrics directly, not through the balancer.
        location = /metrics {{ return 404; }}
        location / {{ return 404; }}
    }}
}}
"""


def kept_secret(path: Path, variable: str) -> str:
    """The variable's value, else the one kept in the file, else a new one kept there (mode 600)."""
    if not path.exists():
        path.write_text(os.environ.get(variable) or secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def prometheus_config(directory: Path, serve_ports: list[int], api_ports: list[int]) -> str:
    """A scrape configuration for every process: each serves its own `/metrics` (the balancer
    hides it), so Prometheus scrapes each one, as it would each pod or machine."""
    targets = ", ".join(f"'127.0.0.1:{port}'" for port in [*serve_ports, *api_ports])
    return f"""# Generated by deploy/cluster.py: prometheus --config.file={directory / "prometheus.yml"}
scrape_configs:
  - job_name: todo-mcp
    scrape_interval: 15s
    authorization:
      credentials_file: {directory / "metrics_token"}
    static_configs:
      - targets: [{targets}]
"""


def start(options: argparse.Namespace) -> None:
    directory = Path(options.dir).resolve()
    state_file = directory / "state.json"
    if state_file.exists():
        sys.exit(f"a cluster is already recorded in {directory}; stop it first (make cluster-stop)")
    nginx = need("nginx", "nginx")
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "nginx" / "scratch" / sub).mkdir(parents=True, exist_ok=True)
    secret_file = directory / "jwt_secret"
    metrics_token_file = directory / "metrics_token"
    direct_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE)
    state: dict[str, Any] = {"processes": [], "direct_url": direct_url}
    try:
        ensure_database(direct_url)
        env = {
            **os.environ,
            "DATABASE_URL": direct_url,
            "JWT_SECRET": kept_secret(secret_file, "JWT_SECRET"),
            "METRICS_TOKEN": kept_secret(metrics_token_file, "METRICS_TOKEN"),
        }
        # What an operator's log tools read: one JSON object per line, request id and tool-call
        # fields as keys (text lines with LOG_FORMAT=text).
        env.setdefault("LOG_FORMAT", "json")
        # OAuth log-in for remote MCP clients, at the balancer's address unless told another.
        env.setdefault("PUBLIC_URL", f"http://127.0.0.1:{options.port}")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        subprocess.run([str(TODO_MCP), "db", "upgrade"], env=env, check=True, cwd=directory)
        if options.pgbouncer:
            pooled_url, pgbouncer_pid = start_pgbouncer(directory, direct_url)
            state["pgbouncer_pid"] = pgbouncer_pid
            env |= {"DATABASE_URL": pooled_url, "DATABASE_TRANSACTION_POOLER": "true"}
            state["service_url"] = pooled_url
            say(f"PgBouncer (transaction mode) on {pooled_url.rsplit('@', 1)[-1]}")
        serve_ports = [free_port() for _ in range(options.serve)]
        api_ports = [free_port() for _ in range(options.api)]
        for kind, ports in (("serve", serve_ports), ("api", api_ports)):
            for port in ports:
                log = directory / "logs" / f"{kind}-{port}.log"
                with log.open("ab") as log_file:
                    process = subprocess.Popen(
                        [str(TODO_MCP), kind, "--host", "127.0.0.1", "--port", str(port)],
                        env=env,
                        cwd=directory,
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                state["processes"].append({"kind": kind, "port": port, "pid": process.pid, "log": str(log)})
                wait_healthy(f"http://127.0.0.1:{port}", process, log)
        (directory / "prometheus.yml").write_text(prometheus_config(directory, serve_ports, api_ports))
        conf = directory / "nginx" / "nginx.conf"
        conf.write_text(nginx_conf(directory, options.port, serve_ports, api_ports))
        subprocess.run([nginx, "-t", "-q", "-c", str(conf), "-p", str(directory / "nginx")], check=True)
        subprocess.run([nginx, "-c", str(conf), "-p", str(directory / "nginx")], check=True)
        state["nginx_pid"] = int(wait_for_file(directory / "nginx" / "nginx.pid").read_text().strip())
        state["url"] = f"http://127.0.0.1:{options.port}"
        wait_healthy(state["url"], None, directory / "nginx" / "error.log")
    finally:
        state_file.write_text(json.dumps(state, indent=2))
    url = state["url"]
    say(f"\ntodo-mcp cluster at {url}: MCP {url}/mcp, REST {url}/api, docs {url}/docs")
    pooler = " through PgBouncer" if options.pgbouncer else ""
    say(f"  {options.serve} serve and {options.api} api processes on one PostgreSQL{pooler}")
    say(f"  logs in {directory / 'logs'} (JSON lines), nginx's in {directory / 'nginx' / 'access.log'}")
    say(f"  a token: JWT_SECRET=$(cat {secret_file}) .venv/bin/todo-mcp token USER_ID")
    first = state["processes"][0]["port"]
    say(
        f'  metrics of each process: curl -H "Authorization: Bearer $(cat {metrics_token_file})" '
        f"http://127.0.0.1:{first}/metrics"
    )
    say(f"    (every process's: make cluster-status; for Prometheus: {directory / 'prometheus.yml'})")
    say(f"  OAuth: MCP clients log in at {env['PUBLIC_URL']}/mcp (accounts: POST {url}/auth/signup)")
    say("  stop it: make cluster-stop")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pid: int, deadline_seconds: float = 15.0) -> None:
    """SIGTERM (a graceful stop: requests in flight are answered), then SIGKILL if it lingers."""
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + deadline_seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def stop(options: argparse.Namespace) -> None:
    directory = Path(options.dir).resolve()
    state_file = directory / "state.json"
    if not state_file.exists():
        say(f"no cluster is recorded in {directory}")
        return
    state = json.loads(state_file.read_text())
    # The balancer first, so that no new request goes to a process being stopped.
    if "nginx_pid" in state and alive(state["nginx_pid"]):
        os.kill(state["nginx_pid"], signal.SIGQUIT)  # nginx's graceful stop
        deadline = time.monotonic() + 10
        while alive(state["nginx_pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    for process in state["processes"]:
        terminate(process["pid"])
    if "pgbouncer_pid" in state:
        terminate(state["pgbouncer_pid"])
    pgbouncer_dir = directory / "pgbouncer"
    if pgbouncer_dir.is_file():
        folder = Path(pgbouncer_dir.read_text().strip())
        if (folder / "pgbouncer.log").exists():
            shutil.copyfile(folder / "pgbouncer.log", directory / "logs" / "pgbouncer.log")
        shutil.rmtree(folder, ignore_errors=True)
        pgbouncer_dir.unlink()
    state_file.unlink()
    say(f"cluster in {directory} stopped")


def status(options: argparse.Namespace) -> None:
    state_file = Path(options.dir).resolve() / "state.json"
    if not state_file.exists():
        say("no cluster is running")
        return
    state = json.loads(state_file.read_text())
    nginx_pid = state.get("nginx_pid", 0)
    say(f"balancer {state.get('url')} (nginx pid {nginx_pid}, {'up' if alive(nginx_pid) else 'down'})")
    token_file = Path(options.dir).resolve() / "metrics_token"
    token = token_file.read_text().strip() if token_file.exists() else ""
    for process in state["processes"]:
        running = alive(process["pid"])
        where = f"{process['kind']:5} :{process['port']} pid {process['pid']}"
        say(f"  {where} {'up' if running else 'down'}  log {process['log']}")
        if running:
            say(f"        {readiness(process['port'])}")
            say(f"        {metrics_summary(process['port'], token)}")


def readiness(port: int) -> str:
    """What the process's /ready says: whether its database answers it now."""
    import httpx

    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
    except httpx.TransportError as exc:
        return f"ready: no answer ({exc!r})"
    if answer.status_code == 200:
        return "ready: yes, the database answers"
    return f"ready: no ({answer.status_code} {answer.text[:200]})"


# The counters `status` sums up, each by the label that says how a call or request ended.
SUMMED_BY = {
    "todo_mcp_tool_calls_total": "outcome",
    "todo_mcp_http_requests_total": "status",
    "todo_mcp_database_errors_total": "kind",
}


def metrics_summary(port: int, token: str) -> str:
    """One line of what a process's /metrics says: calls and requests by outcome, database
    errors by kind, the pool now."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{port}/metrics"
    try:
        answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    except httpx.TransportError as exc:
        return f"{url}: {exc!r}"
    if answer.status_code != 200:
        return f"{url}: {answer.status_code} {answer.text[:200]}"
    totals: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            label = SUMMED_BY.get(sample.name)
            if label is not None:
                by = totals.setdefault(sample.name, {})
                by[sample.labels[label]] = by.get(sample.labels[label], 0) + sample.value
            elif sample.name in ("todo_mcp_db_pool_in_use", "todo_mcp_db_pool_waiting"):
                totals.setdefault("pool", {})[sample.name.removeprefix("todo_mcp_db_pool_")] = sample.value

    def show(name: str) -> str:
        return " ".join(f"{key}={value:g}" for key, value in sorted(totals.get(name, {}).items())) or "none"

    return (
        f"tool calls: {show('todo_mcp_tool_calls_total')}; REST: {show('todo_mcp_http_requests_total')}; "
        f"database errors: {show('todo_mcp_database_errors_total')}; pool: {show('pool')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="todo-mcp's production shape on one machine")
    parser.add_argument("--dir", default=str(ROOT / ".cluster"), help="where the cluster's files go")
    commands = parser.add_subparsers(dest="command", required=True)
    starting = commands.add_parser("start")
    starting.add_argument("--serve", type=int, default=2, help="todo-mcp serve processes (MCP)")
    starting.add_argument("--api", type=int, default=1, help="todo-mcp api processes (REST, assistant)")
    starting.add_argument("--port", type=int, default=8080, help="where nginx listens")
    starting.add_argument("--pgbouncer", action="store_true", help="PgBouncer in transaction mode in between")
    commands.add_parser("stop")
    commands.add_parser("status")
    options = parser.parse_args()
    {"start": start, "stop": stop, "status": status}[options.command](options)


if __name__ == "__main__":
    main()
