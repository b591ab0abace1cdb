"""JSON Schemas of the HTTP API (request bodies and replies) and the small
validator that enforces the request ones.

The validator understands the subset these schemas use: ``type`` (one or a
list), ``properties``, ``required``, ``items``, ``additionalProperties: false``,
``enum``, ``minimum``, and ``$ref`` into :data:`COMPONENTS`. Range and format
rules beyond that are the IM layer's checks.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput

Schema = dict[str, Any]

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: tuple[str, ...] = (), closed: bool = False, /, **properties: Schema) -> Schema:
    """An object schema with ``properties``; ``closed`` forbids other keys."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STRING: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
SEQ: Schema = {"type": "integer", "minimum": 0}
NUMBER: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
USERNAMES: Schema = array(STRING)


def validate(schema: Schema, value: Any, where: str = "body") -> None:
    """Check ``value`` against ``schema``.

    Raises:
        InvalidInput: naming the first offending field.
    """
    if "$ref" in schema:
        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[1]]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(kind, value) for kind in kinds):
            raise InvalidInput(f"{where} must be {' or '.join(kinds)}", field=where)
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidInput(f"{where} must be one of {schema['enum']}", field=where)
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        raise InvalidInput(f"{where} must be at least {schema['minimum']}", field=where)
    if isinstance(value, dict):
        _validate_object(schema, value, where)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            validate(schema["items"], item, f"{where}[{index}]")


def _is(kind: str, value: Any) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[kind])


def _validate_object(schema: Schema, value: dict[str, Any], where: str) -> None:
    properties: dict[str, Schema] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            raise InvalidInput(f"{name} is required", field=name)
    if schema.get("additionalProperties") is False:
        unknown = sorted(set(value) - set(properties))
        if unknown:
            raise InvalidInput(f"unknown fields: {', '.join(unknown)}", field=unknown[0])
    for name, sub in properties.items():
        if name in value:
            validate(sub, value[name], name)


PROFILE_FIELDS: dict[str, Schema] = {
    "display_name": STRING,
    "age": {"type": ["integer", "null"]},
    "gender": STRING,
    "signature": STRING,
    "dm_policy": {"type": "string", "enum": ["anyone", "contacts"]},
}

MESSAGE = obj(
    ("conversation", "seq", "id", "from", "ts", "kind"),
    conversation=STRING,
    seq=INT,
    id=STRING,
    ts=NUMBER,
    kind={"type": "string", "enum": ["text", "data", "system", "recall", "edit"]},
    text=STRING,
    data=ANY_OBJECT,
    mentions=USERNAMES,
    target=INT,
    event=STRING,
    recalled=BOOL,
    edited_at=NUMBER,
    **{"from": STRING},
)

COMPONENTS: dict[str, Schema] = {
    "Error": obj(
        ("error",),
        error=obj(("code", "message"), code=STRING, message=STRING, details=ANY_OBJECT),
    ),
    "Profile": obj(
        ("username", "display_name"), username=STRING, created_at=NUMBER, **PROFILE_FIELDS
    ),
    "Login": obj(
        ("token", "user", "device", "expires_at"),
        token=STRING,
        user=STRING,
        device=STRING,
        expires_at=NUMBER,
    ),
    "Device": obj(
        ("device",), device=STRING, name=STRING, created_at=NUMBER, cursor=INT, current=BOOL
    ),
    "Contact": obj(
        ("username", "state"),
        username=STRING,
        state={"type": "string", "enum": ["outgoing", "incoming", "accepted"]},
        since=NUMBER,
    ),
    "Group": obj(
        ("id", "conversation", "name", "type", "owner", "member_count"),
        id=STRING,
        conversation=STRING,
        name=STRING,
        type={"type": "string", "enum": ["open", "closed"]},
        description=STRING,
        owner=STRING,
        member_count=INT,
        created_at=NUMBER,
        role=STRING,
    ),
    "Member": obj(("username", "role"), username=STRING, role=STRING),
    "Message": MESSAGE,
    "Ack": obj(
        ("conversation", "seq", "id", "ts", "duplicate"),
        conversation=STRING,
        seq=INT,
        id=STRING,
        ts=NUMBER,
        duplicate=BOOL,
        client_msg_id=NULLABLE_STRING,
    ),
    "Conversation": obj(
        ("conversation", "type", "last_seq", "read_seq", "unread"),
        conversation=STRING,
        type={"type": "string", "enum": ["direct", "group"]},
        name=NULLABLE_STRING,
        last_seq=INT,
        read_seq=INT,
        unread=INT,
        last_ts={"type": ["number", "null"]},
        last_message={"oneOf": [ref("Message"), {"type": "null"}]},
    ),
    "InboxEvent": obj(("inbox_seq", "type"), inbox_seq=INT, type=STRING, message=ref("Message")),
    "Sync": obj(
        ("events", "cursor", "has_more", "heads", "reset"),
        events=array(ref("InboxEvent")),
        cursor=INT,
        has_more=BOOL,
        heads={"type": "object", "additionalProperties": INT},
        reset=BOOL,
    ),
}
