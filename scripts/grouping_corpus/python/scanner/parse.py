"""Configuration and manifests: the standard library raises, our code calls it."""

import json


def load_config(text: str) -> dict[str, object]:
    return dict(json.loads(text))


def load_manifest(text: str) -> dict[str, object]:
    return dict(json.loads(text))


def page_number(text: str) -> int:
    return int(text)
