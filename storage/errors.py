"""Storage-layer errors. They know nothing of HTTP; api/errors.py maps them to S3 codes.

StorageError
 +-- NoSuchBucket          the bucket does not exist
 +-- NoSuchKey             the key (or version) does not exist or is a delete marker
 +-- BucketNotEmpty        delete of a bucket that still holds objects
 +-- BucketAlreadyExists   create of a bucket that exists
 +-- EntityTooLarge        a body longer than the configured object size limit
 +-- NoSuchVersion         the version id does not exist for the key
 +-- NoSuchUpload          the multipart upload does not exist (or was completed/aborted)
 +-- InvalidPart           a completion names a part that was not uploaded, or a wrong ETag
 +-- InvalidPartOrder      a completion lists parts out of ascending order
 +-- EntityTooSmall        a part other than the last is smaller than the minimum
 +-- PreconditionFailed    a write condition (If-Match, If-None-Match) did not hold
 +-- ConditionalConflict   a write condition failed because another write committed meanwhile
 +-- BadDigest             a completion's whole-object checksum differs from the parts'
 +-- NoSuchConfiguration   a bucket has no document of that kind (policy, CORS, tagging)
 +-- ObjectLocked          object lock forbids it (a delete, or shortening a retention)
 +-- InvalidBucketState    the bucket's state forbids it (suspending versioning under lock)
 +-- LockNotEnabled        lock settings on a bucket without object lock enabled
 +-- LockOnDeleteMarker    retention or legal hold asked of a delete marker
 +-- ReadOnly              writes are refused (store closing or in maintenance)
 +-- CorruptData           bytes on disk do not match their BLAKE3 hash
 +-- FormatError           an on-disk structure (segment record, manifest) cannot be decoded
"""


class StorageError(Exception):
    """Base of every error raised by the storage layer."""


class NoSuchBucket(StorageError):
    pass


class NoSuchKey(StorageError):
    pass


class BucketNotEmpty(StorageError):
    pass


class BucketAlreadyExists(StorageError):
    pass


class EntityTooLarge(StorageError):
    pass


class NoSuchVersion(StorageError):
    pass


class NoSuchUpload(StorageError):
    pass


class InvalidPart(StorageError):
    pass


class InvalidPartOrder(StorageError):
    pass


class EntityTooSmall(StorageError):
    pass


class PreconditionFailed(StorageError):
    pass


class ConditionalConflict(StorageError):
    pass


class BadDigest(StorageError):
    pass


class NoSuchConfiguration(StorageError):
    pass


class ObjectLocked(StorageError):
    """A retention or legal hold in force forbids removing (or unprotecting) the version."""


class InvalidBucketState(StorageError):
    pass


class LockNotEnabled(StorageError):
    pass


class LockOnDeleteMarker(StorageError):
    pass


class ReadOnly(StorageError):
    pass


class CorruptData(StorageError):
    """A chunk failed BLAKE3 verification; the read must stop, never return the bytes."""


class FormatError(StorageError):
    """An on-disk structure is malformed (bad magic, truncated, bad trailer)."""
