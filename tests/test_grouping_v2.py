"""Grouping v2, rule by rule: the order of the variants, each variant, the fingerprint variables,
each platform's frame normalisation, exception chains and groups, recursion, and linear cost on
pathological input (by counting executed lines, never by the clock)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from shim.core.grouping_v2 import GROUPING_VERSION, Grouping, group
from shim.core.grouping_v2.mask import MASKED_PREFIX, mask
from shim.core.grouping_v2.stacks import RECURSION_PERIOD

Event = dict[str, Any]


def f(function: str | None, module: str | None = None, in_app: bool | None = True,
      **extra: Any) -> dict[str, Any]:
    frame = {"function": function, "module": module, "in_app": in_app, **extra}
    return {k: v for k, v in frame.items() if v is not None}


def exception(type_: str | None = "ValueError", value: str | None = "bad page 3",
              frames: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"type": type_, "value": value, **extra}
    if frames is not None:
        found["stacktrace"] = {"frames": frames}
    return {k: v for k, v in found.items() if v is not None}


def event(*values: dict[str, Any], **extra: Any) -> Event:
    base: Event = {"event_id": "a" * 32, "platform": "python", **extra}
    if values:
        base["exception"] = {"values": list(values)}
    return base


APP = [f("main", "app.cli"), f("read_page", "app.ocr")]
EXC = event(exception(frames=APP))


def test_result_is_a_hash_a_variant_and_json_able_components() -> None:
    result = group(EXC)
    assert isinstance(result, Grouping) and result.version == GROUPING_VERSION == 2
    assert len(result.hash) == 32 and int(result.hash, 16) >= 0
    info = json.loads(json.dumps(result.info()))
    assert info["variant"] == "exception" and info["hash"] == result.hash
    assert info["components"]["exceptions"][0]["frames"] == [
        "mod:app.cli|fn:main", "mod:app.ocr|fn:read_page"]


def test_the_input_is_never_changed() -> None:
    before = json.dumps(EXC, sort_keys=True)
    group(EXC)
    assert json.dumps(EXC, sort_keys=True) == before


# --- the order of strength ---------------------------------------------------------------------

CRASHED = {"values": [{"id": 1, "crashed": True, "stacktrace": {"frames": [f("loop", "app.w")]}}]}
CSP = {"effective_directive": "script-src", "blocked_uri": "https://evil.example/x.js"}
TEMPLATE = {"filename": "cart.html", "context_line": "{{ cart.total }}"}
STACK = {"frames": [f("export", "jobs.nightly")]}

ORDER: list[tuple[str, Event]] = [
    ("custom fingerprint", {**EXC, "fingerprint": ["mine"], "threads": CRASHED}),
    ("exception", {**EXC, "threads": CRASHED, "stacktrace": STACK, "csp": CSP,
                   "message": "m"}),
    ("threads", event(threads=CRASHED, stacktrace=STACK, csp=CSP, template=TEMPLATE,
                      message="m")),
    ("stacktrace", event(stacktrace=STACK, csp=CSP, template=TEMPLATE)),
    ("csp", event(csp=CSP, template=TEMPLATE, message="m")),
    ("template", event(template=TEMPLATE, message="m")),
    ("message", event(message="m", logger="x")),
    ("fallback", event(logger="x")),
]


@pytest.mark.parametrize(("variant", "data"), ORDER, ids=[name for name, _ in ORDER])
def test_the_strongest_component_wins(variant: str, data: Event) -> None:
    assert group(data).variant == variant


def test_a_stack_attached_to_a_message_leaves_the_message_to_decide() -> None:
    current = {"values": [{"current": True, "stacktrace": {"frames": [f("log_it", "app")]}}]}
    synthetic = exception(None, "m", APP, mechanism={"type": "generic", "synthetic": True})
    for attached in ({"threads": current}, {"stacktrace": STACK},
                     {"exception": {"values": [synthetic]}}):
        assert group(event(message="disk 91% full", **attached)).hash \
            == group(event(message="disk 97% full")).hash
    # Without a message the same stack decides.
    assert group(event(threads=current)).variant == "threads"
    assert group(event(exception={"values": [synthetic]}, message=None)).variant == "exception"


# --- exceptions --------------------------------------------------------------------------------

def h(data: Event) -> str:
    return group(data).hash


def test_in_app_frames_only_when_there_are_any() -> None:
    library = f("urlopen", "urllib3", in_app=False)
    assert h(event(exception(frames=[*APP, library]))) == h(EXC)
    only_library = event(exception(frames=[library]))
    other_library = event(exception(frames=[f("send", "httpx", in_app=False)]))
    assert h(only_library) != h(other_library)


def test_the_value_counts_only_where_the_stack_cannot_decide() -> None:
    assert h(event(exception(value="bad page 9", frames=APP))) == h(EXC)
    assert h(event(exception(value="other words", frames=APP))) == h(EXC)
    no_stack = h(event(exception(value="timed out after 30 s")))
    assert no_stack == h(event(exception(value="timed out after 45 s")))
    assert no_stack != h(event(exception(value="connection refused")))
    # Frames that only name a file (minified code) leave the value to decide too.
    files = [{"filename": "https://x.example/app.min.js", "function": "t", "in_app": True}]
    assert h(event(exception(value="a is null", frames=files), platform="javascript")) \
        != h(event(exception(value="b is null", frames=files), platform="javascript"))


def test_a_synthetic_exception_has_no_type_or_value() -> None:
    made_up = {"type": "Error", "mechanism": {"synthetic": True}}
    assert h(event(exception(frames=APP, **made_up))) \
        == h(event(exception("Other", "x", frames=APP, **made_up)))


def test_the_chain_counts_whole_oldest_first() -> None:
    cause = exception("KeyError", "'page'", [f("lookup", "app.ocr")])
    chained = event(cause, exception(frames=APP))
    assert h(chained) != h(EXC)
    assert h(chained) != h(event(exception(frames=APP), cause))


def test_the_stack_of_an_exception_may_live_on_its_thread() -> None:
    crash = event(exception("EXC_BAD_ACCESS", "x", thread_id=3),
                  threads={"values": [{"id": 3, "crashed": True,
                                       "stacktrace": {"frames": [f("-[A b:]")]}}]},
                  platform="cocoa")
    assert group(crash).components["exceptions"][0]["frames"] == ["fn:-[A b:]"]


def test_ns_error_domain_and_code_count() -> None:
    def ns(code: int) -> Event:
        meta = {"ns_error": {"domain": "NSURLErrorDomain", "code": code}}
        return event(exception("NSURLErrorDomain", "failed", mechanism={"meta": meta}))
    assert h(ns(-1009)) == h(ns(-1009)) != h(ns(-1001))


def member(type_: str, function: str, number: int, parent: int = 0) -> dict[str, Any]:
    return exception(type_, f"{type_} {number}", [f(function, "app.jobs")],
                     mechanism={"type": "chained", "source": f"exceptions[{number}]",
                                "exception_id": number + 1, "parent_id": parent})


def exception_group(*members: dict[str, Any]) -> Event:
    root = exception("ExceptionGroup", "batch failed", [f("run_all", "app.jobs")],
                     mechanism={"type": "generic", "is_exception_group": True,
                                "exception_id": 0})
    return event(*members, root)


def test_an_exception_group_of_one_problem_groups_as_that_problem() -> None:
    alone = h(event(exception("ValueError", "x", [f("read", "app.jobs")])))
    assert h(exception_group(member("ValueError", "read", 0))) == alone
    assert h(exception_group(*(member("ValueError", "read", n) for n in range(3)))) == alone


def test_an_exception_group_of_several_problems_is_the_group_and_each_once() -> None:
    mixed = h(exception_group(member("ValueError", "read", 0), member("KeyError", "find", 1)))
    assert mixed == h(exception_group(member("KeyError", "find", 0),
                                      member("ValueError", "read", 1),
                                      member("KeyError", "find", 2)))
    assert mixed != h(exception_group(member("ValueError", "read", 0),
                                      member("TypeError", "find", 1)))


def test_nested_exception_groups_are_searched_for_their_leaves() -> None:
    inner = exception("ExceptionGroup", "inner", [f("inner", "app.jobs")],
                      mechanism={"type": "chained", "source": "exceptions[0]",
                                 "is_exception_group": True, "exception_id": 1, "parent_id": 0})
    nested = exception_group(member("ValueError", "read", 1, parent=1), inner)
    assert h(nested) == h(event(exception("ValueError", "x", [f("read", "app.jobs")])))


def test_a_cyclic_or_very_deep_link_structure_terminates() -> None:
    cyclic = [exception("E", "x", [f("a", "m")], mechanism={
        "is_exception_group": True, "exception_id": n, "parent_id": (n + 1) % 3,
        "source": "exceptions[0]"}) for n in range(3)]
    assert group(event(*cyclic)).variant == "exception"
    deep = [exception("E", "x", [f("a", "m")], mechanism={
        "is_exception_group": True, "exception_id": n, "parent_id": n - 1 if n else None,
        "source": "exceptions[0]"}) for n in range(5000)]
    assert group(event(*deep)).variant == "exception"


# --- recursion ---------------------------------------------------------------------------------


def recursive(depth: int, cycle: list[str]) -> Event:
    frames = [f("main", "app")] + [f(cycle[n % len(cycle)], "app") for n in range(depth)]
    return event(exception("RecursionError", "maximum recursion depth exceeded", frames))


def recursive_fresh(depth: int, cycle: list[str]) -> Event:
    """``recursive`` with names of its own (nothing remembered from another size)."""
    frames = [f("main", f"app{depth}")] + [f(cycle[n % len(cycle)], f"app{depth}")
                                           for n in range(depth)]
    return event(exception("RecursionError", "maximum recursion depth exceeded", frames))


@pytest.mark.parametrize("cycle", [["walk"], ["even", "odd"], list("abcdefgh")])
def test_repeated_frames_count_once(cycle: list[str]) -> None:
    shallow = group(recursive(len(cycle) * 3, cycle))
    assert shallow.hash == group(recursive(len(cycle) * 400, cycle)).hash
    assert shallow.components["exceptions"][0]["frame_count"] == 1 + len(cycle)


def test_a_cycle_longer_than_the_period_is_not_collapsed() -> None:
    cycle = [f"f{n}" for n in range(RECURSION_PERIOD + 1)]
    assert h(recursive(len(cycle) * 2, cycle)) != h(recursive(len(cycle) * 3, cycle))


# --- custom fingerprints -----------------------------------------------------------------------


def custom(fingerprint: list[Any], data: Event = EXC, **extra: Any) -> str:
    return h({**data, **extra, "fingerprint": fingerprint})


def test_a_custom_fingerprint_overrides_and_default_alone_is_the_default() -> None:
    other = event(exception("KeyError", "x", [f("elsewhere", "app")]))
    assert custom(["db-down"]) == custom(["db-down"], other) != h(EXC)
    for spelling in ("{{ default }}", "{{default}}", "{{  default  }}"):
        assert custom([spelling]) == h(EXC)
    assert group({**EXC, "fingerprint": ["{{ default }}"]}).variant == "exception"


@pytest.mark.parametrize("fingerprint", [None, [], "db-down", {"a": 1}, 7])
def test_a_fingerprint_that_is_not_a_list_is_ignored(fingerprint: object) -> None:
    assert h({**EXC, "fingerprint": fingerprint}) == h(EXC)


def test_default_with_more_refines_the_default() -> None:
    refined = custom(["{{ default }}", "{{ tags.shard }}"], tags={"shard": "a"})
    assert refined != h(EXC)
    assert refined == custom(["{{ default }}", "{{ tags.shard }}"], tags=[["shard", "a"]])
    assert refined != custom(["{{ default }}", "{{ tags.shard }}"], tags={"shard": "b"})
    info = group({**EXC, "tags": {"shard": "a"},
                  "fingerprint": ["{{ default }}", "{{ tags.shard }}"]}).info()
    assert info["components"]["default"]["variant"] == "exception"
    assert info["components"]["values"][1] == "a"


VARIABLES: list[tuple[str, Callable[[str], Event], str]] = [
    ("transaction", lambda v: {**EXC, "transaction": v}, "/api/orders"),
    ("type", lambda v: event(exception(v, "x", APP)), "KeyError"),
    ("error.type", lambda v: event(exception(v, "x", APP)), "KeyError"),
    ("value", lambda v: event(exception("E", v, APP)), "bad"),
    ("error.value", lambda v: event(exception("E", v, APP)), "bad"),
    ("function", lambda v: event(exception(frames=[*APP, f(v, "app.x")])), "parse"),
    ("stack.function", lambda v: event(exception(frames=[f(v, "app.x")])), "parse"),
    ("module", lambda v: event(exception(frames=[f("g", v)])), "app.store"),
    ("stack.module", lambda v: event(exception(frames=[f("g", v)])), "app.store"),
    ("stack.abs_path", lambda v: event(exception(frames=[f("g", abs_path=v)])), "/a/b.py"),
    ("stack.filename", lambda v: event(exception(frames=[f("g", filename=v)])), "b.py"),
    ("package", lambda v: event(exception(frames=[f("g", package=v)])), "libx.so"),
    ("logger", lambda v: event(message="m", logger=v), "billing"),
    ("level", lambda v: event(message="m", level=v), "fatal"),
    ("message", lambda v: event(message=v), "disk full"),
    ("tags.server_name", lambda v: event(message="m", tags={"server_name": v}), "web-1"),
]


@pytest.mark.parametrize(("name", "build", "value"), VARIABLES, ids=[v[0] for v in VARIABLES])
def test_each_variable_expands_to_the_events_value(name: str, build: Callable[[str], Event],
                                                   value: str) -> None:
    by_variable = custom(["x", f"{{{{ {name} }}}}"], build(value))
    assert by_variable == custom(["x", value], build(value))
    assert by_variable != custom(["x", f"{{{{ {name} }}}}"], build(value + "2"))


def test_the_crashing_frame_is_the_innermost_in_app_one() -> None:
    frames = [f("outer", "app"), f("inner", "app"), f("lib_call", "lib", in_app=False)]
    assert custom(["{{ function }}"], event(exception(frames=frames))) == custom(["inner"])


def test_a_missing_variable_reads_the_same_in_every_event() -> None:
    assert custom(["{{ transaction }}"]) == custom(["{{ transaction }}"], event(message="m"))
    assert custom(["{{ transaction }}"]) == custom(["<no transaction>"])


# --- security reports, template, message, fallback --------------------------------------------


def csp(directive: str, blocked: str, document: str = "https://shop.example/a") -> Event:
    return event(csp={"effective_directive": directive, "blocked_uri": blocked,
                      "document_uri": document})


def test_csp_groups_by_directive_and_blocked_scheme_and_host() -> None:
    base = h(csp("script-src", "https://evil.example/x.js?1"))
    assert base == h(csp("script-src", "https://evil.example/y/z.js", "https://shop.example/b"))
    assert base == h(event(**{"csp-report": {"effective-directive": "script-src",
                                             "blocked-uri": "https://evil.example/q.js"}}))
    assert base != h(csp("script-src", "http://evil.example/x.js"))
    assert base != h(csp("script-src", "https://other.example/x.js"))
    assert base != h(csp("img-src", "https://evil.example/x.js"))
    assert h(csp("script-src", "inline")) == h(csp("script-src", "'unsafe-inline'")) \
        != h(csp("script-src", "eval"))
    assert group(csp("script-src", "https://u:p@evil.example:8443/x")).components["blocked"] \
        == "https://evil.example:8443"


@pytest.mark.parametrize("kind", ["expectct", "expectstaple", "hpkp"])
def test_certificate_reports_group_by_host_name(kind: str) -> None:
    def report(host: str, port: int) -> Event:
        return event(**{kind: {"hostname": host, "port": port, "date_time": f"{port}"}})
    assert h(report("www.example.com", 443)) == h(report("WWW.example.com.", 8443))
    assert h(report("www.example.com", 443)) != h(report("api.example.com", 443))
    assert group(report("www.example.com", 443)).variant == kind
    others = {"expectct", "expectstaple", "hpkp"} - {kind}
    assert all(h(report("a.example", 1)) != h(event(**{o: {"hostname": "a.example"}}))
               for o in others)


def test_template_groups_by_file_and_source_line() -> None:
    def template(filename: str, line: str, lineno: int) -> Event:
        return event(template={"filename": filename, "context_line": line, "lineno": lineno})
    base = h(template("cart.html", "{{ cart.total }}", 12))
    assert base == h(template("cart.html", "   {{ cart.total }}", 40))
    assert base != h(template("cart.html", "{{ cart.items }}", 12))
    assert base != h(template("order.html", "{{ cart.total }}", 12))


def test_message_template_before_formatting() -> None:
    def logged(template: str, formatted: str) -> Event:
        return event(logentry={"message": template, "formatted": formatted, "params": [1]})
    assert h(logged("page %d failed", "page 1 failed")) == h(logged("page %d failed", "x"))
    assert h(event(message="page 7 of 12 failed")) == h(event(message="page 9 of 13 failed"))
    assert h(event(message={"formatted": "job 550e8400-e29b-41d4-a716-446655440000 stuck"})) \
        == h(event(message="job 6ba7b810-9dad-11d1-80b4-00c04fd430c8 stuck"))
    assert h(event(message="disk full")) != h(event(message="disk missing"))
    assert h(event(**{"sentry.interfaces.Message": {"message": "disk full"}})) \
        == h(event(message="disk full"))


def test_events_with_nothing_in_common_never_share_a_group() -> None:
    first, second = event(), {**event(), "event_id": "b" * 32}
    assert group(first).variant == "fallback"
    assert h(first) != h(second)
    assert h({**first, "logger": "cron"}) == h({**second, "logger": "cron"})
    assert h({**first, "transaction": "/a"}) == h({**second, "transaction": "/a"})
    assert h({**first, "logger": "cron"}) != h({**first, "logger": "web"})


# --- cost on pathological input ----------------------------------------------------------------


def test_masking_reads_a_bounded_prefix() -> None:
    long = "x 12 " * (1_000_000 // 5)
    assert mask(long) == mask(long[:MASKED_PREFIX])
    assert h(event(message=long + "A")) == h(event(message=long + "B"))
    assert len(json.dumps(group(event(message=long)).info())) < 2_000


def lines_executed(action: Callable[[], object]) -> int:
    """How many lines of grouping_v2 ``action`` executes: a measure of work, not of time."""
    count = 0

    def tracer(frame: Any, event_name: str, arg: Any) -> Any:
        nonlocal count
        if "grouping_v2" not in frame.f_code.co_filename:
            return None
        if event_name == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        action()
    finally:
        sys.settrace(None)
    return count


def distinct_frames(n: int) -> Event:
    # Names differ between sizes too: normalised frames are remembered, a repeat costs less.
    return event(exception(frames=[f(f"step_{n}_{i}", f"app.m{i % 7}") for i in range(n)]))


@pytest.mark.parametrize("build", [
    distinct_frames,
    lambda n: recursive_fresh(n, ["walk"]),
    lambda n: recursive_fresh(n, ["a", "b", "c"]),
    lambda n: event(*(exception("E", f"e{n}-{i}", [f("g", "m")]) for i in range(n // 10))),
    lambda n: event(message="word 12 " * n),
], ids=["distinct frames", "recursion", "mutual recursion", "long chain", "long message"])
def test_work_grows_linearly(build: Callable[[int], Event]) -> None:
    small, large = build(2_500), build(10_000)
    ratio = lines_executed(lambda: group(large)) / lines_executed(lambda: group(small))
    assert ratio < 4.5  # quadratic work would be 16


def test_ten_thousand_frames_give_a_bounded_record() -> None:
    result = group(distinct_frames(10_000))
    assert result.components["exceptions"][0]["frame_count"] == 10_000
    assert len(result.components["exceptions"][0]["frames"]) == 20
    assert len(json.dumps(result.info())) < 4_000


def test_a_long_chain_of_long_values_gives_a_bounded_record() -> None:
    chain = event(*(exception(f"E{i}", "value " * 2_000) for i in range(1_000)))
    result = group(chain)
    assert result.components["exception_count"] == 1_000
    assert len(result.components["exceptions"]) == 10
    assert len(json.dumps(result.info())) < 8_000
