"""The child processes local runs start: stopping one, asking a ``bridge start`` if it is ready."""

from __future__ import annotations

import subprocess
import urllib.request


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``; its exit status.
    Idempotent; closes its stdout pipe if it had one."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


def worker_ready(port: int) -> bool:
    """Whether the ``bridge start`` whose health server is on ``port`` says it is ready."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
