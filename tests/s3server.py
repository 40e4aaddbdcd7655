"""A real S3-protocol server on loopback for tests: moto's standalone server, in its own process.

The gateway's own client code (obstore) runs unchanged against it; users run AWS S3, MinIO, R2 or GCS.
Buckets are made with boto3 (moto's own dependency): obstore, like the object_store crate, has no bucket API.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from tests.servers import free_port as _free_port

START_TIMEOUT_S = 30.0
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"


def moto_server_path() -> str | None:
    beside = Path(sys.executable).with_name("moto_server")
    return str(beside) if beside.exists() else shutil.which("moto_server")



class MotoServer:
    """`moto_server -H 127.0.0.1 -p PORT` started and stopped by its own pid."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "MotoServer":
        exe = moto_server_path()
        if exe is None:
            raise FileNotFoundError("moto_server is not installed (pip install 'moto[server]')")
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}")
            try:
                httpx.get(self.endpoint + "/moto-api/", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("moto_server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def env(self) -> dict[str, str]:
        """The standard variables a gateway (or any AWS client) reads to reach this server."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": self.endpoint}

    def client(self) -> Any:
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def new_bucket(self) -> str:
        name = f"media-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        reply = self.client().list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in reply.get("Contents", []))
