"""GetObject/HeadObject ``?partNumber=N``: the bytes of one part of a multipart object.

As AWS answers: part N of a multipart object is a ranged answer (206, Content-Range, the
object's ETag) with ``x-amz-mp-parts-count``; a part number beyond the last part is 416
InvalidPartNumber. An object that was not uploaded in parts is one part: part 1 is the whole
object (206 with a Content-Range covering it), any other part is 400 InvalidPart. A Range
header with a part number is 400 InvalidRequest. The parts' sizes are kept with the
completed object (storage/uploads.py, PART_SIZES_HEADER).
"""

from __future__ import annotations

from api.context import S3Context
from api.errors import S3Error
from storage.manifest import Manifest
from storage.uploads import PART_NUMBER_MAX, PART_SIZES_HEADER

Ranges = list[tuple[int, int]]


def part_number_param(raw: str) -> int:
    """A ``partNumber`` query value: 1..10000 or InvalidArgument, as AWS answers."""
    if not raw.isdigit() or not 1 <= int(raw) <= PART_NUMBER_MAX:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive",
        )
    return int(raw)


def part_sizes(manifest: Manifest) -> list[int]:
    """The sizes of a multipart object's parts, in order ([] for an object put whole)."""
    sizes = dict(manifest.headers).get(PART_SIZES_HEADER)
    return [int(size) for size in sizes.split(",")] if sizes else []


def part_range(
    ctx: S3Context, manifest: Manifest, raw: str
) -> tuple[Ranges | None, dict[str, str]]:
    """(the byte range of part ``raw`` or None for an empty one, headers to add)."""
    number = part_number_param(raw)
    if "range" in ctx.headers:
        raise S3Error(
            "InvalidRequest", "Cannot specify both Range header and partNumber query parameter"
        )
    sizes = part_sizes(manifest)
    if not sizes:
        if number != 1:
            raise S3Error(
                "InvalidPart",
                "The requested partnumber is not satisfiable",
                resource=ctx.resource,
            )
        return ([(0, manifest.size - 1)] if manifest.size else None), {}
    if number > len(sizes):
        raise S3Error(
            "InvalidPartNumber",
            "The requested partnumber is not satisfiable",
            resource=ctx.resource,
        )
    first = sum(sizes[: number - 1])
    count = {"x-amz-mp-parts-count": str(len(sizes))}
    if sizes[number - 1] == 0:
        return None, count
    return [(first, first + sizes[number - 1] - 1)], count
