"""A live banditd for the tests: the debug binary of this repository (built by `cargo test` or
`cargo build`; `BANDITD_BIN` names another), on a free port, a temporary data dir and the
experiments below. Stopped when the test ends, whatever happens."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]

STICKY = """
id: headline
description: Which headline converts?
owner: growth
status: running
assignment: sticky
reward: { window: 7d }
policy: { burn_in: 0, min_share: 0.05 }
default_variant: control
variants:
  - id: control
    payload: { headline: "Build faster" }
  - id: bold
    payload: { headline: "Ship in a day" }
"""

PER_REQUEST = """
id: ranking
description: Which ranking weights keep people clicking?
owner: search
status: running
assignment: per_request
reward: { window: 1d }
policy: { burn_in: 0, min_share: 0.05 }
default_variant: a
variants:
  - id: a
    payload: { weights: [1, 0] }
  - id: b
    payload: { weights: [0.5, 0.5] }
"""

DRAFT = """
id: pricing
description: Which price page sells?
owner: growth
status: draft
default_variant: old
variants:
  - id: old
    payload: { layout: "table" }
  - id: new
    payload: { layout: "cards" }
"""


def banditd_binary() -> Path:
    named = os.environ.get("BANDITD_BIN")
    if named:
        return Path(named)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "banditd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path


def start_server(tmp: Path, env: Optional[Dict[str, str]] = None) -> Server:
    binary = banditd_binary()
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `cargo build` first (or set BANDITD_BIN)")
    experiments = tmp / "experiments"
    experiments.mkdir()
    for name, text in (("headline", STICKY), ("ranking", PER_REQUEST), ("pricing", DRAFT)):
        (experiments / f"{name}.yaml").write_text(text)
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BANDITD_")}
    environment.update({"RUST_LOG": "warn", **(env or {})})
    log = tmp / "server.log"
    process = subprocess.Popen(
        [
            str(binary),
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(tmp / "data"),
            "--experiments",
            str(experiments),
        ],
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
            return Server(url, process, log)
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"banditd did not start:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server with no keys: every route open."""
    s = start_server(tmp_path)
    yield s
    stop_server(s)


@pytest.fixture
def keyed_server(tmp_path: Path) -> Iterator[Server]:
    """A server with an admin and an events key."""
    s = start_server(
        tmp_path, {"BANDITD_ADMIN_KEY": "admin-secret", "BANDITD_EVENTS_KEY": "events-secret"}
    )
    yield s
    stop_server(s)
