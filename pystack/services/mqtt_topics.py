"""MQTT 3.1.1 topic names and topic filters (section 4.7).

Topics are split into levels at ``/`` once, when a filter is subscribed or a message is
published, and matched level by level. The rules, from the spec:

- ``+`` matches exactly one level, possibly empty: ``sport/+`` matches ``sport/`` but not
  ``sport``; it must fill its whole level (``sport+`` is not a valid filter).
- ``#`` matches any number of levels, including none: ``sport/#`` matches ``sport`` too. It must
  be the last level and fill it.
- Topics starting with ``$`` (``$SYS/...``) are not matched by a filter whose first level is a
  wildcard (4.7.2-1): ``#`` and ``+/x`` do not see them, ``$SYS/#`` does.
Entry points: ``split``, ``valid_filter``, ``matches``.
"""

from __future__ import annotations

Levels = tuple[str, ...]


def split(topic: str) -> Levels:
    return tuple(topic.split("/"))


def valid_filter(topic_filter: str) -> bool:
    """4.7.1 and 4.7.3: non-empty, wildcards alone in their level, ``#`` only last."""
    if not topic_filter or "\x00" in topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def matches(topic_filter: Levels, topic: Levels) -> bool:
    """Does the (valid) filter match the topic name? Both given as levels."""
    if topic[0].startswith("$") and topic_filter[0] in ("+", "#"):
        return False  # 4.7.2-1
    for index, level in enumerate(topic_filter):
        if level == "#":
            return True
        if index >= len(topic) or (level != "+" and level != topic[index]):
            return False
    return len(topic_filter) == len(topic)
