"""What the worker processes of one node share: a commit lock and a small shared-memory file.

With ``lakenode serve --workers N`` several processes serve one data dir (docs/architecture.md,
"Process model"). Each has its own Store, group committer and caches; this module is what
keeps them one node:

* **The commit lock** (``DATA/run/commit.lock``, an flock): a worker's group commit holds it
  from ``BEGIN IMMEDIATE`` to after it has published what it touched. Commits of all workers
  are therefore serial, so change-log sequence numbers follow commit order and each commit
  reads the HLC the previous one recorded (the node's clock never goes backwards). Waiting on
  an flock wakes at once when it is released, where SQLite's busy handler would sleep and poll.
* **The ring of touched keys** (``DATA/run/shared``, mmap): under the commit lock, after
  ``COMMIT`` and before any writer hears back, a commit writes a 16-byte digest of each
  (bucket, key) it touched, or of the bucket for a bucket-wide change. Every worker calls
  :meth:`SharedState.poll` before it trusts a cache and forgets what other workers touched,
  so a read that starts after an acknowledged write on any worker sees that write. A worker
  that falls more than the ring's capacity behind forgets everything (always safe).
* **GC floors**: the lowest segment each worker's in-flight operations may still need
  (storage/inflight.py); GC, which runs in one worker, retires no segment at or above any of
  them.
* **The write gate**: maintenance mode closes the gate of every worker at once (a flag all of
  them read, api/write_gate.py) and waits until every worker's count of writes in flight,
  published here too, is zero; a worker that (re)starts meanwhile starts closed.

Memory ordering: a writer stores an entry, then the sequence number; a reader loads the
sequence, then the entries, and checks each entry's own sequence number (an entry not yet
visible or already overwritten makes it forget everything). Readers never write.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from typing import Final

RUN_DIR: Final = "run"  # DATA/run: the files of a running multi-worker node
SHARED_FILE: Final = "shared"
COMMIT_LOCK_FILE: Final = "commit.lock"

MAGIC: Final = b"LKSHARE1"
WORKERS_MAX: Final = 256
RING_CAPACITY: Final = 1 << 15  # entries; a worker this far behind forgets everything
# header: magic, ring sequence, gate closed, supervisor restarts, keys generation, every
# worker started, data dir recovered, reserved
_HEADER = struct.Struct("<8sQQQQQQ8x")
_SEQ_OFFSET: Final = 8
_GATE_OFFSET: Final = 16
_RESTARTS_OFFSET: Final = 24
_KEYS_OFFSET: Final = 32
_STARTED_OFFSET: Final = 40
_RECOVERED_OFFSET: Final = 48
_FLOORS_OFFSET: Final = _HEADER.size
_FLOOR = struct.Struct("<Q")
_WRITES_OFFSET: Final = _FLOORS_OFFSET + WORKERS_MAX * _FLOOR.size  # writes in flight
_RING_OFFSET: Final = _WRITES_OFFSET + WORKERS_MAX * _FLOOR.size
# entry: kind, 7 bytes padding, digest (16), sequence number (8)
_ENTRY = struct.Struct("<B7x16sQ")
SHARED_BYTES: Final = _RING_OFFSET + RING_CAPACITY * _ENTRY.size
_U64 = struct.Struct("<Q")

KEY: Final = 1  # one (bucket, key)
BUCKET: Final = 2  # a bucket-wide change (documents, versioning, create, delete)
TAGGED: Final = 3  # a bucket that now holds object tags
EVERYTHING: Final = 4  # unknown outcome: forget every cached read


def key_digest(bucket: str, key: str) -> bytes:
    return blake2b(f"{bucket}\x00{key}".encode(), digest_size=16).digest()


@dataclass(frozen=True)
class Touched:
    """What other workers must forget: key digests, and whether buckets changed as a whole."""

    keys: tuple[bytes, ...] = ()
    buckets: bool = False  # some bucket-wide state changed: bucket-level caches are stale
    tagged: bool = False  # some bucket got its first tags: tag lookups must not be skipped
    everything: bool = False  # forget every cached read


def run_dir(data_dir: Path) -> Path:
    return data_dir / RUN_DIR


def create_shared_file(data_dir: Path) -> Path:
    """A fresh shared file (the supervisor makes it before it starts any worker)."""
    directory = run_dir(data_dir)
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / SHARED_FILE
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as file:
        file.truncate(SHARED_BYTES)
        file.write(_HEADER.pack(MAGIC, 0, 0, 0, 0, 0, 0))
    os.replace(temporary, path)
    (directory / COMMIT_LOCK_FILE).touch(mode=0o600)
    return path


class SharedState:
    """One worker's view of the shared file."""

    def __init__(self, data_dir: Path, worker_index: int) -> None:
        if not 0 <= worker_index < WORKERS_MAX:
            raise ValueError(f"worker index {worker_index} out of range")
        self.worker_index = worker_index
        directory = run_dir(data_dir)
        fd = os.open(directory / SHARED_FILE, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, SHARED_BYTES)
        finally:
            os.close(fd)
        if self._map[:8] != MAGIC:
            raise ValueError(f"{directory / SHARED_FILE} is not a lakenode shared file")
        self._lock_path = directory / COMMIT_LOCK_FILE
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._holding = False
        self._seen = self._sequence()

    # ---- the commit lock ------------------------------------------------------------------

    def lock_commits(self) -> None:
        """Block until this worker holds the commit lock (call it off the event loop)."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._holding = True

    def pass_commit_in_progress(self) -> None:
        """Block until no worker is in a commit that began before this call (call it off the
        event loop): after it, a read sees every commit that could have missed something this
        worker published before the call (a GC floor). A descriptor of its own: flock is per
        open file, and this worker's committer may hold the lock on the other."""
        fd = os.open(self._lock_path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)  # releases it

    def unlock_commits(self) -> None:
        """Release the commit lock if held (a failed commit releases it too)."""
        if self._holding:
            self._holding = False
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # ---- start ----------------------------------------------------------------------------

    def mark_recovered(self) -> None:
        """The primary has recovered the data dir: the other workers may open it."""
        _U64.pack_into(self._map, _RECOVERED_OFFSET, 1)

    def recovered(self) -> bool:
        return bool(_U64.unpack_from(self._map, _RECOVERED_OFFSET)[0])

    def node_started(self) -> bool:
        """Every worker has started once (set by the supervisor, :func:`every_worker_started`).
        Until then the node is not ready: a client that connects as soon as the first worker
        answers would put its keep-alive connections all on that one worker."""
        return bool(_U64.unpack_from(self._map, _STARTED_OFFSET)[0])

    # ---- access keys ----------------------------------------------------------------------

    def keys_generation(self) -> int:
        """The highest access-key generation any worker has loaded (storage/keys.py)."""
        return int(_U64.unpack_from(self._map, _KEYS_OFFSET)[0])

    def note_keys_generation(self, generation: int) -> None:
        """This worker loaded the keys of ``generation``: the others load them before their
        next request, so a key change seen by one worker is seen by all from then on. Two
        workers noting at once may leave the lower value: the others then catch up at their
        next poll of the catalog (node/app.py), as without this hint."""
        if generation > self.keys_generation():
            _U64.pack_into(self._map, _KEYS_OFFSET, generation)

    # ---- the ring -------------------------------------------------------------------------

    def _sequence(self) -> int:
        return int(_U64.unpack_from(self._map, _SEQ_OFFSET)[0])

    def publish(self, touched: Touched) -> Touched | None:
        """Record what a commit touched; only while holding the commit lock. Returns what other
        workers touched since this one last polled (committed before this commit), which the
        caller must forget too: its own entries are skipped by its later polls."""
        assert self._holding, "publish needs the commit lock"
        missed = self.poll()
        entries: list[tuple[int, bytes]] = [(KEY, digest) for digest in touched.keys]
        if touched.buckets:
            entries.append((BUCKET, b""))
        if touched.tagged:
            entries.append((TAGGED, b""))
        if touched.everything:
            entries.append((EVERYTHING, b""))
        sequence = self._sequence()
        for kind, digest in entries:
            slot = _RING_OFFSET + (sequence % RING_CAPACITY) * _ENTRY.size
            _ENTRY.pack_into(self._map, slot, kind, digest, sequence + 1)
            sequence += 1
        _U64.pack_into(self._map, _SEQ_OFFSET, sequence)
        self._seen = sequence  # this worker's caches already know what it committed
        return missed

    def poll(self) -> Touched | None:
        """What other workers touched since the last poll (None: nothing)."""
        sequence = self._sequence()
        seen = self._seen
        if sequence == seen:
            return None
        self._seen = sequence
        if sequence - seen > RING_CAPACITY:
            return Touched(everything=True)
        keys: list[bytes] = []
        buckets = tagged = False
        for number in range(seen + 1, sequence + 1):
            slot = _RING_OFFSET + ((number - 1) % RING_CAPACITY) * _ENTRY.size
            kind, digest, stamped = _ENTRY.unpack_from(self._map, slot)
            if stamped != number or kind == EVERYTHING:
                return Touched(everything=True)  # overwritten, or not visible yet
            if kind == KEY:
                keys.append(digest)
            elif kind == BUCKET:
                buckets = True
            elif kind == TAGGED:
                tagged = True
        return Touched(tuple(keys), buckets, tagged)

    # ---- GC floors ------------------------------------------------------------------------

    def set_floor(self, floor: int | None) -> None:
        """This worker's lowest in-flight segment (None: nothing in flight)."""
        offset = _FLOORS_OFFSET + self.worker_index * _FLOOR.size
        _FLOOR.pack_into(self._map, offset, 0 if floor is None else floor + 1)

    def other_floors(self) -> list[int]:
        floors = []
        for index in range(WORKERS_MAX):
            if index == self.worker_index:
                continue
            (value,) = _FLOOR.unpack_from(self._map, _FLOORS_OFFSET + index * _FLOOR.size)
            if value:
                floors.append(value - 1)
        return floors

    # ---- the write gate -------------------------------------------------------------------

    @property
    def gate_closed(self) -> bool:
        return bool(_U64.unpack_from(self._map, _GATE_OFFSET)[0])

    def set_gate_closed(self, closed: bool) -> None:
        _U64.pack_into(self._map, _GATE_OFFSET, 1 if closed else 0)

    def set_writes_in_flight(self, count: int) -> None:
        _U64.pack_into(self._map, _WRITES_OFFSET + self.worker_index * _U64.size, count)

    def writes_in_flight(self) -> int:
        """Writes in flight in every worker of the node."""
        return sum(
            _U64.unpack_from(self._map, _WRITES_OFFSET + index * _U64.size)[0]
            for index in range(WORKERS_MAX)
        )

    # ---- the supervisor's figures ---------------------------------------------------------

    @property
    def restarts(self) -> int:
        """Workers the supervisor restarted after they died."""
        return int(_U64.unpack_from(self._map, _RESTARTS_OFFSET)[0])

    def close(self) -> None:
        self.set_floor(None)
        self.set_writes_in_flight(0)
        self._map.close()
        os.close(self._lock_fd)


def worker_died(data_dir: Path, worker_index: int) -> None:
    """A worker died: its floors and writes died with it (the supervisor calls this before
    it restarts one, and counts the restart)."""
    path = run_dir(data_dir) / SHARED_FILE
    with open(path, "r+b") as file, mmap.mmap(file.fileno(), SHARED_BYTES) as shared:
        _FLOOR.pack_into(shared, _FLOORS_OFFSET + worker_index * _FLOOR.size, 0)
        _U64.pack_into(shared, _WRITES_OFFSET + worker_index * _U64.size, 0)
        (restarts,) = _U64.unpack_from(shared, _RESTARTS_OFFSET)
        _U64.pack_into(shared, _RESTARTS_OFFSET, restarts + 1)


def every_worker_started(data_dir: Path) -> None:
    """The supervisor saw every worker serving once: the node may answer ready."""
    path = run_dir(data_dir) / SHARED_FILE
    with open(path, "r+b") as file, mmap.mmap(file.fileno(), SHARED_BYTES) as shared:
        _U64.pack_into(shared, _STARTED_OFFSET, 1)


def digests_of(touched: Iterable[tuple[str, str | None]]) -> tuple[tuple[bytes, ...], bool]:
    """Key digests of what a batch touched, and whether any change was bucket-wide."""
    keys: list[bytes] = []
    buckets = False
    for bucket, key in touched:
        if key is None:
            buckets = True
        elif bucket or key:
            keys.append(key_digest(bucket, key))
    return tuple(keys), buckets
