"""Conditional writes on two sites: each condition holds against its own site's state only;
a create-only write made on both sites before they replicate succeeds on both, LWW keeps the
later one everywhere, and the conflict is counted as involving a conditional write
(lakenode_repl_conditional_conflicts_total, `repl conflicts`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.integration.s3util import error_of
from tests.integration.sites import Sites, node_id
from tests.integration.test_multisite import CONVERGE_TIMEOUT_S, PLAIN, setup_buckets
from tests.integration.test_replication_ops import metric, wait_for
from tests.integration.test_tombstone_gc import _conflicts

pytestmark = pytest.mark.slow


def test_create_only_writes_on_two_sites_resolve_by_lww_and_are_counted(tmp_path: Path) -> None:
    with Sites(tmp_path, 2) as sites:
        setup_buckets(sites)
        sites.cut_both(0, 1)
        first = sites.client(0).put_object(Bucket=PLAIN, Key="k", Body=b"site 0", IfNoneMatch="*")
        second = sites.client(1).put_object(Bucket=PLAIN, Key="k", Body=b"site 1", IfNoneMatch="*")
        assert first["ETag"] != second["ETag"]  # both held on their own site
        with pytest.raises(ClientError) as local:
            sites.client(1).put_object(Bucket=PLAIN, Key="k", Body=b"again", IfNoneMatch="*")
        assert error_of(local) == (412, "PreconditionFailed")
        sites.heal()
        convergence = sites.wait_converged(CONVERGE_TIMEOUT_S)
        assert convergence.converged, convergence.diff
        for i in range(2):  # site 1 wrote last: its stamp is the greater
            assert sites.client(i).get_object(Bucket=PLAIN, Key="k")["Body"].read() == b"site 1"

        def counted(i: int) -> float:
            peer = node_id(1 - i)
            value = metric(sites.nodes[i], "lakenode_repl_conditional_conflicts_total", peer=peer)
            return value or 0.0

        wait_for(lambda: counted(0) + counted(1), lambda total: total == 1, "conditional conflict")
        assert counted(1) == 1  # site 0's write lost where it met site 1's
        listed = _conflicts(sites.nodes[1].data_dir)
        assert listed.returncode == 0, listed.stderr
        records = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
        assert [(r["key"], r["origin"], r["conditional"]) for r in records] == [
            ("k", node_id(0), True)
        ]
