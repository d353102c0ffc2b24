"""Sign-in throttling: failed attempts slow down the next ones, per client and per key.

Guessing a secret through the console must cost time. After ``FREE_FAILURES`` failures
within ``WINDOW_S``, from one client address or against one access key, each further
attempt must wait ``2 ** (failures - FREE_FAILURES)`` seconds after the last failure (capped
at ``MAX_DELAY_S``); an attempt made sooner is refused without checking the secret, so a
guess made too early learns nothing. A success clears the client's and the key's record.
Counting per key as well stops an attacker who spreads guesses over many addresses; counting
per address stops one who spreads them over many keys.

Memory is bounded: at most ``MAX_TRACKED`` addresses and keys each, the oldest forgotten
first. Each worker throttles on its own, so with N workers an attacker gets at most N times
the attempts, still exponentially slowed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

FREE_FAILURES: Final = 5
WINDOW_S: Final = 900.0
MAX_DELAY_S: Final = 300.0
MAX_TRACKED: Final = 10_000


@dataclass
class _Failures:
    count: int = 0
    last_s: float = 0.0


@dataclass
class SignInThrottle:
    free_failures: int = FREE_FAILURES
    window_s: float = WINDOW_S
    max_delay_s: float = MAX_DELAY_S
    max_tracked: int = MAX_TRACKED
    _by_client: OrderedDict[str, _Failures] = field(default_factory=OrderedDict)
    _by_key: OrderedDict[str, _Failures] = field(default_factory=OrderedDict)

    def wait_s(self, client: str, access_key: str, now_s: float) -> float:
        """Seconds before this client may try this key again (0: now)."""
        return max(
            self._wait(self._by_client.get(client), now_s),
            self._wait(self._by_key.get(access_key), now_s),
        )

    def failed(self, client: str, access_key: str, now_s: float) -> None:
        for table, name in ((self._by_client, client), (self._by_key, access_key)):
            record = table.pop(name, None) or _Failures()
            if now_s - record.last_s > self.window_s:
                record = _Failures()
            record.count += 1
            record.last_s = now_s
            table[name] = record  # most recent last
            while len(table) > self.max_tracked:
                table.popitem(last=False)

    def succeeded(self, client: str, access_key: str) -> None:
        self._by_client.pop(client, None)
        self._by_key.pop(access_key, None)

    def _wait(self, record: _Failures | None, now_s: float) -> float:
        if record is None or now_s - record.last_s > self.window_s:
            return 0.0
        over = record.count - self.free_failures
        if over < 0:
            return 0.0
        delay = min(self.max_delay_s, float(2**over))
        return max(0.0, record.last_s + delay - now_s)
