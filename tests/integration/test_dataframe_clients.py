"""Arrow's and polars' S3 filesystems against a real node, at their DEFAULT checksum settings.

What they send (seen on the wire through a logging proxy, pyarrow 26 / polars 2.1):

* pyarrow (AWS SDK for C++): every write is a multipart upload created without a checksum
  algorithm, whose parts are aws-chunked (STREAMING-UNSIGNED-PAYLOAD-TRAILER) with an
  ``x-amz-checksum-crc64nvme`` trailer; reads are ranged GETs with
  ``x-amz-checksum-mode: enabled``.
* polars (object_store): a single PutObject with an ``x-amz-checksum-crc64nvme`` header and
  ``UNSIGNED-PAYLOAD``; reads are ranged GETs.

Before CRC64NVME was supported every one of these writes failed with 400.
"""

from __future__ import annotations

import os
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tests.checksum_reference import b64
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

MiB = 1 << 20


def _arrow_fs(node: NodeProcess) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=node.url.removeprefix("http://"),
        scheme="http",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
    )


def _polars_options(node: NodeProcess) -> dict[str, str]:
    return {
        "aws_endpoint_url": node.url,
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "aws_region": REGION,
        "aws_allow_http": "true",
    }


def _table(rows: int) -> pa.Table:
    return pa.table({"n": list(range(rows)), "s": [f"row {i}" for i in range(rows)]})


def test_pyarrow_writes_reads_and_lists_parquet(node: NodeProcess, s3: Any, bucket: str) -> None:
    fs = _arrow_fs(node)
    table = _table(5000)
    pq.write_table(table, f"{bucket}/dir/part-0.parquet", filesystem=fs)
    pq.write_table(table.slice(0, 10), f"{bucket}/dir/sub/part-1.parquet", filesystem=fs)
    assert pq.read_table(f"{bucket}/dir/part-0.parquet", filesystem=fs).equals(table)
    listed = fs.get_file_info(pafs.FileSelector(f"{bucket}/dir", recursive=True))
    files = sorted(info.path for info in listed if info.type == pafs.FileType.File)
    assert files == [f"{bucket}/dir/part-0.parquet", f"{bucket}/dir/sub/part-1.parquet"]
    sizes = {info.path: info.size for info in listed}
    stored = s3.head_object(Bucket=bucket, Key="dir/part-0.parquet")
    assert sizes[f"{bucket}/dir/part-0.parquet"] == stored["ContentLength"]


def test_pyarrow_multipart_stream_round_trips(node: NodeProcess, s3: Any, bucket: str) -> None:
    """A stream larger than the SDK's part size: several CRC64NVME-trailed parts."""
    fs = _arrow_fs(node)
    pieces = [os.urandom(6 * MiB), os.urandom(6 * MiB), os.urandom(1234)]
    with fs.open_output_stream(f"{bucket}/big.bin") as stream:
        for piece in pieces:
            stream.write(piece)
    with fs.open_input_stream(f"{bucket}/big.bin") as stream:
        assert stream.read() == b"".join(pieces)
    # The upload was created without an algorithm: the object gets AWS's default, the
    # FULL_OBJECT CRC64NVME of its bytes, combined from the parts' CRC64NVMEs.
    head = s3.head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == b64("CRC64NVME", b"".join(pieces))
    assert head["ChecksumType"] == "FULL_OBJECT"


def test_polars_write_read_and_scan_parquet(node: NodeProcess, s3: Any, bucket: str) -> None:
    options = _polars_options(node)
    frame = pl.DataFrame({"n": list(range(2000)), "s": [f"v{i}" for i in range(2000)]})
    url = f"s3://{bucket}/tables/frame.parquet"
    frame.write_parquet(url, storage_options=options)
    assert pl.read_parquet(url, storage_options=options).equals(frame)
    scanned = pl.scan_parquet(url, storage_options=options).filter(pl.col("n") < 10).collect()
    assert scanned.equals(frame.head(10))
    # polars sent a CRC64NVME checksum with its PUT: the node verified and stored it.
    stored = s3.get_object(Bucket=bucket, Key="tables/frame.parquet", ChecksumMode="ENABLED")
    body = stored["Body"].read()
    assert stored["ChecksumCRC64NVME"] == b64("CRC64NVME", body)
    assert stored["ChecksumType"] == "FULL_OBJECT"


@pytest.mark.parametrize("rows", [0, 1])
def test_polars_tiny_frames(node: NodeProcess, bucket: str, rows: int) -> None:
    options = _polars_options(node)
    frame = pl.DataFrame({"n": list(range(rows))}, schema={"n": pl.Int64})
    url = f"s3://{bucket}/tiny-{rows}.parquet"
    frame.write_parquet(url, storage_options=options)
    assert pl.read_parquet(url, storage_options=options).equals(frame)
