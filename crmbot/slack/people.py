"""Who and where in the Slack workspace: people by id or email, channels by name.

`SlackDirectory` answers, from the Web API and a small cache with expiry (`TtlCache`):
* `person(owner)`: the Slack user an account owner field names — a user id through
  users.info, an email through users.lookupByEmail — with their name (the
  `crmbot.reply.people.People` protocol the renderers use);
* `aliases(user_id)`: the other names a user may be recorded under as an owner (their
  email and handle), so "mine" matches customers owned by email;
* `bot_dm(user_id)`: the user's direct message with the bot;
* `channel_id(name)`: a channel typed as `#sales` (conversations.list).

Nothing is asked twice within the expiry (default an hour; a miss is remembered too, for
a shorter time), and a failed lookup (no `users:read.email`, a network error) degrades to
the owner as stored rather than failing the reply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from crmbot.core.config import Settings
from crmbot.reply.people import SLACK_USER_ID, Person
from crmbot.slack.retries import retrying_client

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

PERSON_TTL_SECONDS = 3600.0
MISS_TTL_SECONDS = 300.0
MAX_ENTRIES = 10_000
# conversations.list pages read at most when looking a channel name up.
MAX_CHANNEL_PAGES = 20

_MISSING = object()


class TtlCache(Generic[K, V]):
    """A thread-safe map whose entries expire `ttl` seconds after they were stored; the
    oldest go first beyond `max_entries`. `clock` is injectable for tests."""

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | object:
        """The value, or `_MISSING` when absent or expired (use `cached`)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return _MISSING
            expires, value = entry
            if self.clock() >= expires:
                del self._entries[key]
                return _MISSING
            return value

    def put(self, key: K, value: V, *, ttl: float | None = None) -> None:
        with self._lock:
            self._entries[key] = (self.clock() + (self.ttl if ttl is None else ttl), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def cached(self, key: K, load: Callable[[], V], *, miss_ttl: float | None = None) -> V:
        """The cached value, else `load()` stored (a None result for `miss_ttl`)."""
        found = self.get(key)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        value = load()
        self.put(key, value, ttl=miss_ttl if value is None else None)
        return value


class SlackDirectory:
    """People and channels of the workspace, cached (see the module docstring)."""

    def __init__(
        self,
        client: WebClient,
        *,
        ttl_seconds: float = PERSON_TTL_SECONDS,
        miss_ttl_seconds: float = MISS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.miss_ttl = miss_ttl_seconds
        self._users: TtlCache[str, dict | None] = TtlCache(ttl_seconds, clock=clock)
        self._by_email: TtlCache[str, str | None] = TtlCache(ttl_seconds, clock=clock)
        self._channels: TtlCache[str, str | None] = TtlCache(ttl_seconds, clock=clock)
        self._bot_dms: TtlCache[str, str | None] = TtlCache(ttl_seconds * 24, clock=clock)

    # -- users -----------------------------------------------------------------------

    def _user(self, user_id: str) -> dict | None:
        def load() -> dict | None:
            try:
                return dict(self.client.users_info(user=user_id).get("user") or {}) or None
            except (SlackApiError, SlackClientError, OSError) as exc:
                # Without users:read the owner shows as stored, "mine" as the id alone.
                log.info("users.info for %s failed: %s", user_id, exc)
                return None

        return self._users.cached(user_id, load, miss_ttl=self.miss_ttl)

    def _user_by_email(self, email: str) -> str | None:
        def load() -> str | None:
            try:
                user = self.client.users_lookupByEmail(email=email).get("user") or {}
            except (SlackApiError, SlackClientError, OSError) as exc:
                log.info("users.lookupByEmail failed: %s", getattr(exc, "response", exc))
                return None
            user_id = user.get("id")
            if user_id:
                self._users.put(str(user_id), dict(user))
            return str(user_id) if user_id else None

        return self._by_email.cached(email.lower(), load, miss_ttl=self.miss_ttl)

    def person(self, owner: str) -> Person | None:
        """The Slack user `owner` (a user id or an email) names, with their name; None
        when it names nobody Slack knows."""
        owner = owner.strip()
        if SLACK_USER_ID.match(owner):
            user_id: str | None = owner
        elif "@" in owner.strip("@"):
            user_id = self._user_by_email(owner)
        else:
            return None
        if user_id is None:
            return None
        user = self._user(user_id) or {}
        return Person(user_id=user_id, name=_name(user))

    def aliases(self, user_id: str) -> tuple[str, ...]:
        """The other names `user_id` may be recorded under as an owner: email, handle."""
        user = self._user(user_id) or {}
        email = (user.get("profile") or {}).get("email")
        return tuple(a for a in (email, user.get("name")) if a)

    def bot_dm(self, user_id: str) -> str | None:
        """The id of `user_id`'s direct message with the bot (conversations.open: the
        same conversation every time), cached; None when Slack does not say."""

        def load() -> str | None:
            try:
                opened = self.client.conversations_open(users=user_id)
            except (SlackApiError, SlackClientError, OSError) as exc:
                log.info("conversations.open for %s failed: %s", user_id, exc)
                return None
            channel = (opened.get("channel") or {}).get("id")
            return str(channel) if channel else None

        return self._bot_dms.cached(user_id, load, miss_ttl=0)

    # -- channels --------------------------------------------------------------------

    def channel_id(self, name: str) -> str | None:
        """The id of the channel called `name` (`#sales` or `sales`), among the public and
        private channels the bot can list; None when there is none."""
        wanted = name.strip().lstrip("#").lower()
        if not wanted:
            return None
        return self._channels.cached(wanted, lambda: self._find_channel(wanted), miss_ttl=60)

    def _find_channel(self, wanted: str) -> str | None:
        cursor = None
        for _ in range(MAX_CHANNEL_PAGES):
            try:
                page = self.client.conversations_list(
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                )
            except (SlackApiError, SlackClientError, OSError) as exc:
                log.info("conversations.list failed: %s", exc)
                return None
            for channel in page.get("channels") or []:
                if str(channel.get("name", "")).lower() == wanted:
                    return str(channel["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None


def _name(user: dict) -> str:
    profile = user.get("profile") or {}
    for candidate in (
        profile.get("display_name"),
        profile.get("real_name"),
        user.get("real_name"),
        user.get("name"),
    ):
        if candidate:
            return str(candidate)
    return ""


def configured_directory(settings: Settings) -> SlackDirectory | None:
    """The directory SLACK_BOT_TOKEN gives (the shell's owners by name), or None when no
    token is set; its calls go through the one retry policy."""
    if not settings.slack_bot_token:
        return None
    return SlackDirectory(
        retrying_client(token=settings.slack_bot_token, base_url=settings.slack_api_base_url)
    )
