"""Attribute names of every kind, for the request views' fast ``.get`` paths."""

ATTRIBUTE_NAMES = (
    "header.x-color",
    "header.X-Missing",
    "header.content-type",
    "header.",
    "cookie.a",
    "cookie.none",
    "path",
    "method",
    "host",
    "ip",
    "scheme",
    "key",
    "plan",
    "headers.x-color",
)
