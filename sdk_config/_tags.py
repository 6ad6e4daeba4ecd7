"""``component`` and ``workspace_id`` on everything a script sends: tags on its events and, since
Sentry Logs carry no tags, attributes on its logs.

sentry-sdk keeps log attributes on the scope from 2.49 on (and on 3.x). On 2.40-2.48 a
``before_send_log`` hook adds them instead, and drops the ``user.*`` attributes those versions put
on every log whatever ``send_default_pii`` says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sentry_sdk
from sentry_sdk.scope import Scope

SCOPE_ATTRIBUTES = hasattr(Scope, "set_attribute")
"""Whether the installed SDK holds log attributes on the scope (2.49 and later)."""

LogHook = Callable[[dict[str, Any], Any], "dict[str, Any] | None"]

# The attributes the hook adds where the scope cannot hold them.
_log_attributes: dict[str, str] = {}


def set_tags(component: str, workspace_id: str | None) -> None:
    """Tag every event and log from now on; an empty value removes an earlier ``init``'s."""
    scope = sentry_sdk.get_global_scope()
    for key, value in (("component", component), ("workspace_id", workspace_id)):
        if value:
            scope.set_tag(key, value)
            if SCOPE_ATTRIBUTES:
                scope.set_attribute(key, value)
            else:
                _log_attributes[key] = value
        else:
            scope.remove_tag(key)
            if SCOPE_ATTRIBUTES:
                scope.remove_attribute(key)
            else:
                _log_attributes.pop(key, None)


def tagged_logs(theirs: LogHook | None, *, send_pii: bool,
                attributes: Mapping[str, str] = _log_attributes) -> LogHook:
    """A ``before_send_log`` for 2.40-2.48: ``attributes`` added to each log (its own win), the
    user's removed unless ``send_pii``, then the caller's hook ``theirs``, if any."""

    def hook(log: dict[str, Any], hint: Any) -> dict[str, Any] | None:
        own = log.setdefault("attributes", {})
        for key, value in attributes.items():
            own.setdefault(key, value)
        if not send_pii:
            for name in [name for name in own if name.startswith("user.")]:
                del own[name]
        return log if theirs is None else theirs(log, hint)

    return hook
