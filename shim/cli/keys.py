"""The generated DSN key kept in the data dir, and the DSN text made from a key.

The server's ``serve`` and the ``dsn`` command create the key on first use; the core only checks
keys (``shim.core.auth``).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

KEY_FILE = "public_key"


def load_or_create_key(data_dir: Path) -> tuple[str, bool]:
    """The generated key kept in the data dir, creating it on first start. (key, created)."""
    path = data_dir / KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if key.isalnum():
            return key, False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(16)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return key, True


def dsn(key: str, base_url: str, project_id: str = "1") -> str:
    parts = urlsplit(base_url.rstrip("/"))
    return f"{parts.scheme}://{key}@{parts.netloc}{parts.path}/{project_id}"
