"""Shared test configuration."""

import os

# botocore >= 1.44 retries in "standard" mode by default; older ones (which pip may pick when
# s3fs's aiobotocore pins botocore) use "legacy", which retries S3's BadDigest four times with
# backoff: every test that provokes a BadDigest on purpose would then wait seconds. Clients
# and subprocesses (awscli) take the current default either way.
os.environ.setdefault("AWS_RETRY_MODE", "standard")
