"""N lakenode sites as real processes, replicating through fault proxies.

Site ``i`` is a ``lakenode serve`` with node id ``site-i`` and one ``--peer`` per other site
``j``, pointing at the proxy ``links[i, j]`` in front of site ``j``: every direction of every
pair (``i`` pulls from ``j``) can be cut on its own. Sites share the root credentials of
tests/integration/nodeproc.py (replication signs with the root key). Proxies keep their ports
for the life of the harness and nodes keep theirs across restarts, so ``--peer`` URLs stay
valid through kills.

``snapshot(i)`` reads what a site shows S3 clients: every bucket with its versioning status,
ListObjectVersions (version ids, ETags, sizes, latest flags, delete markers), ListObjectsV2 and,
optionally, an MD5 of the bytes of every listed version. ``wait_converged`` polls every site
until all snapshots agree (twice in a row, so a state in passing does not count) and returns
a description of the differences if they never do.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from api.sigv4_signing import sign_headers
from tests.integration.conftest import make_client
from tests.integration.faultproxy import CutMode, FaultProxy
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess, free_port

POLL_INTERVAL_S = 0.5
HTTP_TIMEOUT_S = 10.0
MAX_LIST_PAGES = 1000  # bounds every listing loop


def node_id(index: int) -> str:
    return f"site-{index}"


@dataclass
class SiteProcess(NodeProcess):
    """A NodeProcess that says whether it runs (sites are killed and restarted)."""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


# ---- what a site shows ------------------------------------------------------------------------

# (key, version id, is latest, ETag without quotes, size, is delete marker)
VersionRow = tuple[str, str, bool, str, int, bool]
# (key, ETag without quotes, size)
ObjectRow = tuple[str, str, int]


@dataclass(frozen=True)
class BucketState:
    versioning: str  # "", "Enabled" or "Suspended"
    versions: tuple[VersionRow, ...]
    objects: tuple[ObjectRow, ...]
    # (key, version id) -> MD5 hex of the bytes a GET returns (only when asked for)
    bodies: tuple[tuple[tuple[str, str], str], ...] = ()


SiteState = dict[str, BucketState]


def _etag(value: str | None) -> str:
    return (value or "").strip('"')


def read_bucket(client: Any, bucket: str, with_bodies: bool = False) -> BucketState:
    versioning = client.get_bucket_versioning(Bucket=bucket).get("Status", "")
    versions: list[VersionRow] = []
    kwargs: dict[str, str] = {}
    for _ in range(MAX_LIST_PAGES):
        page = client.list_object_versions(Bucket=bucket, **kwargs)
        for item in page.get("Versions", []):
            versions.append(
                (item["Key"], item["VersionId"], item["IsLatest"], _etag(item.get("ETag")),
                 int(item["Size"]), False)
            )  # fmt: skip
        for item in page.get("DeleteMarkers", []):
            versions.append((item["Key"], item["VersionId"], item["IsLatest"], "", 0, True))
        if not page.get("IsTruncated"):
            break
        kwargs = {"KeyMarker": page["NextKeyMarker"]}
        if page.get("NextVersionIdMarker"):
            kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]
    else:
        raise RuntimeError(f"listing versions of {bucket} did not end")
    objects: list[ObjectRow] = []
    token: dict[str, str] = {}
    for _ in range(MAX_LIST_PAGES):
        page = client.list_objects_v2(Bucket=bucket, **token)
        objects.extend(
            (item["Key"], _etag(item.get("ETag")), int(item["Size"]))
            for item in page.get("Contents", [])
        )
        if not page.get("IsTruncated"):
            break
        token = {"ContinuationToken": page["NextContinuationToken"]}
    else:
        raise RuntimeError(f"listing objects of {bucket} did not end")
    bodies: list[tuple[tuple[str, str], str]] = []
    if with_bodies:
        for key, version_id, _latest, _etag_value, _size, marker in sorted(versions):
            if marker:
                continue
            extra = {} if version_id == "null" else {"VersionId": version_id}
            body = client.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
            bodies.append(((key, version_id), hashlib.md5(body).hexdigest()))
    return BucketState(
        versioning=versioning,
        versions=tuple(sorted(versions)),
        objects=tuple(sorted(objects)),
        bodies=tuple(bodies),
    )


def describe_differences(states: dict[int, SiteState | str]) -> str:
    """Per bucket and key, what each site shows where they do not all agree."""
    lines: list[str] = []
    failed = {i: s for i, s in states.items() if isinstance(s, str)}
    for i, error in sorted(failed.items()):
        lines.append(f"site-{i}: unreadable: {error}")
    readable = {i: s for i, s in states.items() if not isinstance(s, str)}
    buckets = sorted({b for state in readable.values() for b in state})
    for bucket in buckets:
        present = {i: state.get(bucket) for i, state in readable.items()}
        if any(b is None for b in present.values()):
            lines.append(
                f"{bucket}: exists only on "
                + ", ".join(f"site-{i}" for i, b in sorted(present.items()) if b)
            )
            continue
        if len({b.versioning for b in present.values() if b}) > 1:
            lines.append(
                f"{bucket}: versioning "
                + ", ".join(f"site-{i}={b.versioning!r}" for i, b in sorted(present.items()) if b)
            )
        lines.extend(_key_differences(bucket, {i: b for i, b in present.items() if b}))
    return "\n".join(lines) or "no differences"


def _key_differences(bucket: str, states: dict[int, BucketState]) -> list[str]:
    per_key: dict[str, dict[int, list[str]]] = {}
    for i, state in states.items():
        for row in state.versions:
            per_key.setdefault(row[0], {}).setdefault(i, []).append(_row_text(row))
        for key, etag, size in state.objects:
            per_key.setdefault(key, {}).setdefault(i, []).append(f"listed {etag}/{size}")
        for (key, version_id), md5 in state.bodies:
            per_key.setdefault(key, {}).setdefault(i, []).append(f"body {version_id}={md5}")
    lines: list[str] = []
    for key, by_site in sorted(per_key.items()):
        shown = {i: sorted(by_site.get(i, [])) for i in states}
        if len({tuple(rows) for rows in shown.values()}) > 1:
            lines.append(f"{bucket}/{key}:")
            lines.extend(
                f"    site-{i}: {'; '.join(rows) or 'absent'}" for i, rows in sorted(shown.items())
            )
    return lines


def _row_text(row: VersionRow) -> str:
    _key, version_id, latest, etag, size, marker = row
    what = "delete-marker" if marker else f"{etag}/{size}"
    return f"{version_id}{'*' if latest else ''} {what}"


@dataclass
class Convergence:
    converged: bool
    elapsed_s: float
    polls: int
    diff: str
    states: dict[int, SiteState] = field(default_factory=dict)


# ---- the harness ------------------------------------------------------------------------------


class Sites:
    """``count`` sites under ``root``; use as a context manager (stops everything)."""

    def __init__(
        self,
        root: Path,
        count: int,
        *,
        extra_args: Iterable[str] = (),
        env: dict[int, dict[str, str]] | None = None,
        cut_mode: CutMode = "refuse",
    ) -> None:
        assert count >= 1
        self.count = count
        self.cut_mode: CutMode = cut_mode
        ports = [free_port() for _ in range(count)]
        self.links: dict[tuple[int, int], FaultProxy] = {}
        for i in range(count):
            for j in range(count):
                if i != j:
                    self.links[i, j] = FaultProxy(ports[j]).start()
        self.nodes: list[SiteProcess] = []
        for i in range(count):
            peers = [
                arg for j in range(count) if j != i for arg in ("--peer", self.links[i, j].url)
            ]
            self.nodes.append(
                SiteProcess(
                    data_dir=root / node_id(i),
                    port=ports[i],
                    extra_args=["--node-id", node_id(i), *peers, *extra_args],
                    env=dict((env or {}).get(i, {})),
                )
            )
        self._clients: dict[tuple[int, str], Any] = {}
        self.kills = 0
        self.cuts = 0

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> Sites:
        for node in self.nodes:
            node.start()
        return self

    def __enter__(self) -> Sites:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        for proxy in self.links.values():
            proxy.close()

    def kill(self, i: int) -> None:
        """SIGKILL site ``i`` (no shutdown code runs)."""
        self.nodes[i].kill()
        self.kills += 1

    def restart(self, i: int) -> None:
        """Start site ``i`` again (after kill or stop) and wait until it is ready."""
        node = self.nodes[i]
        if node.alive:
            node.stop()
        node.start()

    def alive(self, i: int) -> bool:
        return self.nodes[i].alive

    # ---- links --------------------------------------------------------------------------

    def cut(self, i: int, j: int) -> None:
        """Site ``i`` can no longer pull from site ``j``."""
        if not self.links[i, j].is_cut:
            self.cuts += 1
        self.links[i, j].cut(self.cut_mode)

    def restore(self, i: int, j: int) -> None:
        self.links[i, j].restore()

    def cut_both(self, i: int, j: int) -> None:
        self.cut(i, j)
        self.cut(j, i)

    def partition(self, *groups: Iterable[int]) -> None:
        """Links within a group work, links across groups are cut (both ways).

        Sites not named form one more group together.
        """
        sets = [set(group) for group in groups]
        named = set().union(*sets) if sets else set()
        rest = set(range(self.count)) - named
        if rest:
            sets.append(rest)
        group_of = {site: n for n, group in enumerate(sets) for site in group}
        for i, j in self.links:
            if group_of[i] == group_of[j]:
                self.restore(i, j)
            else:
                self.cut(i, j)

    def heal(self) -> None:
        """Every link restored, no added delay."""
        for proxy in self.links.values():
            proxy.restore()
            proxy.delay(0)

    def cut_links(self) -> list[tuple[int, int]]:
        return sorted(link for link, proxy in self.links.items() if proxy.is_cut)

    # ---- clients ------------------------------------------------------------------------

    def url(self, i: int) -> str:
        return self.nodes[i].url

    def client(self, i: int, *, workload: bool = False) -> Any:
        """A boto3 client for site ``i``; ``workload``: one attempt, short timeouts."""
        kind = "workload" if workload else "check"
        cached = self._clients.get((i, kind))
        if cached is None:
            if workload:
                options: dict[str, Any] = {
                    "retries": {"max_attempts": 1, "mode": "standard"},
                    "connect_timeout": 2,
                    "read_timeout": 10,
                }
            else:
                options = {
                    "retries": {"max_attempts": 3, "mode": "standard"},
                    "connect_timeout": 2,
                    "read_timeout": HTTP_TIMEOUT_S,
                }
            cached = make_client(self.url(i), **options)
            self._clients[i, kind] = cached
        return cached

    def signed_get(self, i: int, path: str, params: dict[str, str] | None = None) -> Any:
        """GET an internal endpoint of site ``i`` (signed with the root key); the JSON answer."""
        url = str(httpx.URL(f"{self.url(i)}{path}", params=params or {}))
        headers = sign_headers("GET", url, {}, ACCESS_KEY, SECRET_KEY, REGION)
        answer = httpx.get(url, headers=headers, timeout=HTTP_TIMEOUT_S)
        answer.raise_for_status()
        return answer.json()

    def info(self, i: int) -> dict[str, Any]:
        info: dict[str, Any] = self.signed_get(i, "/_lakenode/repl/info")
        return info

    # ---- state --------------------------------------------------------------------------

    def snapshot(self, i: int, *, with_bodies: bool = False) -> SiteState:
        client = self.client(i)
        names = sorted(b["Name"] for b in client.list_buckets().get("Buckets", []))
        return {name: read_bucket(client, name, with_bodies) for name in names}

    def snapshots(self, *, with_bodies: bool = False) -> dict[int, SiteState | str]:
        states: dict[int, SiteState | str] = {}
        for i in range(self.count):
            try:
                states[i] = self.snapshot(i, with_bodies=with_bodies)
            except (BotoCoreError, ClientError, httpx.HTTPError, OSError) as exc:
                states[i] = f"{type(exc).__name__}: {exc}"
        return states

    def wait_converged(self, timeout_s: float = 60.0, *, with_bodies: bool = True) -> Convergence:
        """Poll until every site shows the same state twice in a row (bodies checked last)."""
        started = time.monotonic()
        deadline = started + timeout_s
        polls = 0
        previous: dict[int, SiteState | str] | None = None
        states: dict[int, SiteState | str] = {}
        while True:
            polls += 1
            states = self.snapshots()
            if _agree(states) and previous is not None and states == previous:
                full = self.snapshots(with_bodies=with_bodies)
                if _agree(full):
                    return Convergence(True, time.monotonic() - started, polls, "", _readable(full))
                states = full
            previous = states
            if time.monotonic() >= deadline:
                return Convergence(
                    False,
                    time.monotonic() - started,
                    polls,
                    describe_differences(states),
                    _readable(states),
                )
            time.sleep(POLL_INTERVAL_S)

    def logs(self) -> Iterator[tuple[int, str]]:
        for i, node in enumerate(self.nodes):
            yield i, node.log()


def _agree(states: dict[int, SiteState | str]) -> bool:
    values = list(states.values())
    return all(not isinstance(v, str) for v in values) and all(v == values[0] for v in values)


def _readable(states: dict[int, SiteState | str]) -> dict[int, SiteState]:
    return {i: s for i, s in states.items() if not isinstance(s, str)}
