"""How IM things are named in the timeline store, and the rules for user input names.

Timelines (append-only logs):
    ``dm:<a>:<b>``     a direct conversation (usernames sorted), full history
    ``group:<gid>``    a group conversation, full history
    ``inbox:<user>``   a user's inbox: every event their devices must see

Metadata records (free-form fields keyed by id):
    ``user:<u>``, ``auth:<u>``, ``device:<u>:<d>``, ``token:<sha256>``,
    ``contact:<u>:<other>``, ``block:<u>:<other>``, ``conv:<u>:<conversation>``,
    ``read:<u>:<conversation>``, ``group:<gid>``, ``member:<gid>:<u>``,
    ``membership:<u>:<gid>``.
"""

from __future__ import annotations

import re

from ..errors import InvalidInput

# Usernames: 3 to 32 characters, lower-case ASCII letters, digits, "_", "." and
# "-", starting with a letter or digit. Input is lower-cased first, so names are
# case-insensitive. Display names carry everything else (Chinese included).
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{2,31}")
# Group ids follow the same rule.
GROUP_ID_RE = USERNAME_RE


def username(raw: object) -> str:
    """Normalise and check a username.

    Raises:
        InvalidInput: not 3–32 characters of a–z, 0–9, "_", ".", "-".
    """
    if not isinstance(raw, str):
        raise InvalidInput("a username must be a string")
    name = raw.strip().lower()
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            "a username is 3 to 32 characters: letters a-z, digits, '_', '.', '-',"
            " starting with a letter or digit",
            field="username",
        )
    return name


def group_id(raw: object) -> str:
    if not isinstance(raw, str) or not GROUP_ID_RE.fullmatch(raw.strip().lower()):
        raise InvalidInput(
            "a group id is 3 to 32 characters: letters a-z, digits, '_', '.', '-'",
            field="group_id",
        )
    return raw.strip().lower()


def dm(a: str, b: str) -> str:
    first, second = sorted((a, b))
    return f"dm:{first}:{second}"


def group(gid: str) -> str:
    return f"group:{gid}"


def inbox(user: str) -> str:
    return f"inbox:{user}"


def is_group(conversation: str) -> bool:
    return conversation.startswith("group:")


def group_of(conversation: str) -> str:
    """The group id of a ``group:<gid>`` conversation."""
    return conversation.removeprefix("group:")


def dm_members(conversation: str) -> tuple[str, str]:
    """The two usernames of a ``dm:<a>:<b>`` conversation.

    Raises:
        InvalidInput: not a well-formed direct conversation id.
    """
    parts = conversation.split(":")
    if len(parts) != 3 or parts[0] != "dm" or not all(USERNAME_RE.fullmatch(p) for p in parts[1:]):
        raise InvalidInput(f"{conversation!r} is not a conversation id", field="conversation")
    return parts[1], parts[2]


def conversation(raw: object) -> str:
    """Check a conversation id as sent by a client: ``dm:<a>:<b>`` or ``group:<gid>``.

    Raises:
        InvalidInput: anything else.
    """
    if not isinstance(raw, str):
        raise InvalidInput("a conversation id must be a string", field="conversation")
    if raw.startswith("group:"):
        group_id(raw.removeprefix("group:"))
        return raw
    a, b = dm_members(raw)
    if a > b:
        raise InvalidInput(f"{raw!r} is not a conversation id", field="conversation")
    return raw
