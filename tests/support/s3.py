"""An S3-compatible server for the image store's tests: moto's server mode on 127.0.0.1, a thread of the pytest
process started once per session (in about a millisecond), and a fresh bucket per test. Everything that talks to
it (this process, `inkloop serve` children) finds it through environment variables only, as a deployment would:
INKLOOP_STORE_URL=s3://bucket/prefix plus the AWS_* variables below."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",  # moto's default; another region needs CreateBucketConfiguration
    "AWS_CONFIG_FILE": os.devnull,  # never a developer's ~/.aws profile or real credentials
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """http://127.0.0.1:<port> of a moto S3 server; AWS_* variables of this process point at it."""
    from moto.server import ThreadedMotoServer  # the dev extra: moto[s3], flask, flask-cors

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # else one INFO line per S3 request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # returns once the socket is bound: ~1 ms
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # AWS_ENDPOINT_URL_S3 is read by botocore whenever a client is made, so it works although fsspec/s3fs are
    # already imported; FSSPEC_S3_ENDPOINT_URL would be ignored here (fsspec reads FSSPEC_* once, at import).
    names = [*S3_ENV, "AWS_ENDPOINT_URL_S3"]
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL_S3": endpoint})
    # An S3FileSystem made earlier in the session (any ImageStore("s3://...")) keeps the client it connected with.
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield endpoint
    finally:
        server.stop()  # ~0.5 s (werkzeug's shutdown poll); closes the socket
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_env(s3_endpoint: str) -> dict[str, str]:
    """The variables a child process needs (LiveServer(extra_env=...)): children inherit them anyway."""
    return {**S3_ENV, "AWS_ENDPOINT_URL_S3": s3_endpoint}


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    import boto3

    return boto3.client("s3")  # endpoint, credentials and region from the environment


@pytest.fixture
def s3_url(s3_client: Any) -> str:
    """s3://<a fresh bucket>/store for this test."""
    bucket = f"inkloop-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    return f"s3://{bucket}/store"
