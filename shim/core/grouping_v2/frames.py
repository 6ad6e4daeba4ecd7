"""What one stack frame contributes to a group, per platform. Pure.

A frame contributes its module (else its file name) and its function; where the function is
unknown (anonymous, minified, unsymbolicated), its source line instead. Never line or column
numbers, addresses, or absolute paths. Each platform's names are normalised first so that what
changes between builds, deploys and runs does not split a group:

- JavaScript (``javascript``, ``node``): file names lose their origin, query string, fragment,
  version directories, content hashes and bundle chunk ids; anonymous functions (``?``,
  ``<anonymous>``, ``Object.?``) and minified ones (one or two letters) do not count, and V8's
  receivers (``Object.f``, ``Module.f``) are dropped so Chrome and Firefox agree; node's own
  frames (``node:internal/...``, ``internal/...``) and ``[native code]`` never count.
- Java: generated classes (CGLIB, Javassist, ByteBuddy, Hibernate proxies, ``$$Lambda$``, JDK
  proxies and reflection accessors) lose their generated suffix; ``lambda$f$3`` and ``access$000``
  lose their numbers.
- C#: compiler-generated names (``<Main>d__4``, ``<>c__DisplayClass5_0``, ``<Run>b__0``) lose their
  numbers; parameter lists and return types are dropped.
- Native and Cocoa (``native``, ``c``, ``cpp``, ``objc``, ``swift``, ``cocoa``, ``rust``): the
  function name only (file and package never count), without parameters, offsets, template
  arguments, Rust hashes or Swift closure numbers; a frame with only an address does not count.
- Ruby: ``block (2 levels) in f`` is ``block in f``; ERB template methods lose their numbers;
  ``#<Class:0x...>`` loses its address.
- PHP: closures lose their line (``{closure:f():12}``) and anonymous classes their path.
- Python and the rest: module and function as sent.
"""

from __future__ import annotations

import re
from typing import Any

JAVASCRIPT = frozenset({"javascript", "node"})
NATIVE = frozenset({"native", "c", "cpp", "objc", "swift", "cocoa", "rust"})
JAVA = frozenset({"java", "kotlin", "scala", "groovy", "clojure"})
CSHARP = frozenset({"csharp", "dotnet"})

CONTEXT_LINE_LIMIT = 120
"""A longer source line (typically minified code) never contributes."""
NAME_LIMIT = 2048
"""Only the first 2 kB of a module, file or function name are read: the patterns below then cost
a bounded amount whatever an event sends (no real name is that long)."""


_READ = ("platform", "module", "filename", "abs_path", "function", "raw_function", "symbol",
         "context_line")


_KNOWN: dict[tuple[Any, ...], str | None] = {}
"""Keys of frames seen: one call site's frames repeat in every event it sends, so each is
normalised once. Only frames whose names are all within ``NAME_LIMIT`` are kept (a few MB at
most); the dict is emptied when it reaches ``_KNOWN_MAX`` entries."""
_KNOWN_MAX = 16384


def frame_key(frame: dict[str, Any], platform: str) -> str | None:
    """The frame's contribution as one string (``module|function``, ``file|line``...), or None
    when nothing of it may count."""
    get = frame.get
    fields: tuple[Any, ...] = (get("platform"), get("module"), get("filename"), get("abs_path"),
                               get("function"), get("raw_function"), get("symbol"),
                               get("context_line"), platform)
    try:
        return _KNOWN[fields]  # a frame seen before (its names were checked then)
    except KeyError:
        pass
    except TypeError:  # a field that is a list or an object: not a key, and not a name either
        fields = tuple(v if isinstance(v, str) else None for v in fields)
    if any(isinstance(v, str) and len(v) > NAME_LIMIT for v in fields):
        return _key_of(tuple(v[:NAME_LIMIT] if isinstance(v, str) else v for v in fields))
    if len(_KNOWN) >= _KNOWN_MAX:
        _KNOWN.clear()
    key = _KNOWN[fields] = _key_of(fields)
    return key


def _key_of(fields: tuple[str | None, ...]) -> str | None:
    *named, platform = fields
    frame = {key: value for key, value in zip(_READ, named, strict=True)
             if isinstance(value, str)}
    platform = str(frame.get("platform") or platform or "").lower()
    if platform in NATIVE:
        function = native_function(_first_text(frame, "function", "raw_function", "symbol"))
        return f"fn:{function}" if function else None
    if platform in JAVASCRIPT and _is_javascript_internal(frame):
        return None
    where = _where(frame, platform)
    function = _function(_text(frame.get("function")), platform)
    if function:
        return f"{where}|fn:{function}" if where else f"fn:{function}"
    line = _context_line(frame)
    if line:
        return f"{where}|line:{line}" if where else f"line:{line}"
    return where or None


def names_code(key: str) -> bool:
    """Whether a frame key names a function or a line of source, not only a file."""
    return key.startswith(("fn:", "line:")) or "|fn:" in key or "|line:" in key


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _first_text(frame: dict[str, Any], *keys: str) -> str:
    for key in keys:
        if text := _text(frame.get(key)):
            return text
    return ""


def _where(frame: dict[str, Any], platform: str) -> str:
    """``mod:NAME`` from the module, else ``file:NAME`` from the file name; empty when neither."""
    module = _text(frame.get("module"))
    if module:
        return "mod:" + _module(module, platform)
    filename = _text(frame.get("filename")) or _text(frame.get("abs_path"))
    if not filename:
        return ""
    if platform in JAVASCRIPT:
        return "file:" + javascript_filename(filename)
    return "file:" + _file_name(filename)


_ABSOLUTE = re.compile(r"^(?:[/\\~]|[A-Za-z]:[/\\]|[a-z][a-z0-9+.-]*:)")
_SEPARATORS = re.compile(r"[/\\]")


def _file_name(path: str) -> str:
    """A project-relative path as sent (PHP and Ruby SDKs send those), else the base name: the
    directory a program is deployed to never counts."""
    path = path.split("?")[0]
    if _ABSOLUTE.match(path):
        return _SEPARATORS.split(path)[-1]
    return path.replace("\\", "/")


# --- JavaScript ------------------------------------------------------------------------------

_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]*", re.IGNORECASE)
_VERSION_DIR = re.compile(r"/(?:v?\d+(?:\.\d+)+|v\d+|[0-9a-f]{7,40})(?=/)", re.IGNORECASE)
_PACKAGE_VERSION = re.compile(r"@\d+(?:\.\d+)*(?:-[\w.]+)?")
# In a file's base name: a content hash (main.3f2a1b9c.js, chunk-4F2A3B1C.js) or a chunk id.
_NAME_HASH = re.compile(r"(?<=[.\-_~])(?=[0-9a-zA-Z]*\d)[0-9a-zA-Z]{8,}(?=[.\-_])")
_CHUNK_ID = re.compile(r"(?:(?<=^)|(?<=[.\-_~]))\d+(?=[.\-_~])")


def javascript_filename(path: str) -> str:
    """A script's path without what changes between builds and hosts."""
    path = path.split("#")[0].split("?")[0]
    path = _ORIGIN.sub("", path)
    path = _PACKAGE_VERSION.sub("", path)
    path = _VERSION_DIR.sub("", path)
    directory, _, name = path.rpartition("/")
    name = _CHUNK_ID.sub("<id>", _NAME_HASH.sub("<hash>", name))
    if _ABSOLUTE.match(path) and not path.startswith("/"):
        return name  # a file system path of another machine (C:\...)
    return f"{directory}/{name}" if directory else name


def _is_javascript_internal(frame: dict[str, Any]) -> bool:
    filename = _text(frame.get("filename")) or _text(frame.get("abs_path"))
    module = _text(frame.get("module"))
    return (filename.startswith(("node:", "internal/")) or module.startswith("node:")
            or filename in ("[native code]", "native", "<anonymous>"))


_JS_ANONYMOUS = frozenset({"?", "<anonymous>", "anonymous", "Anonymous function",
                           "<anonymous function>", "{anonymous}", "eval", "<unknown>"})
_JS_ALIAS = re.compile(r"\s*\[as [^\]]*\]$")
_JS_PREFIX = re.compile(r"^(?:async |new |Object\.|Module\.|global\.|Function\.)+")
_MINIFIED = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]?")


def javascript_function(name: str) -> str:
    """A function name without the receiver engines add (V8's ``Object.``, ``Module.``), or ""
    when it says nothing lasting (anonymous or minified)."""
    name = _JS_PREFIX.sub("", _JS_ALIAS.sub("", name))
    if (name in _JS_ANONYMOUS or name.endswith(("/<", "/<<", ".?", ".<anonymous>"))
            or all(_MINIFIED.fullmatch(part) for part in name.split("."))):
        return ""
    return name


# --- Java ------------------------------------------------------------------------------------

_JAVA_GENERATED = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\$\$Lambda(?:\$\d+)?(?:/(?:0x)?[0-9a-fA-F]+)?", "$$Lambda"),
        (r"\$\$(EnhancerBy\w*?CGLIB|FastClassBy\w*?CGLIB|SpringCGLIB)\$\$[0-9a-fA-F]+(?:_\d+)?",
         r"$$\1$$<auto>"),
        (r"_\$\$_(?:javassist|jvst)[0-9a-fA-F_]*", "_$$_javassist<auto>"),
        (r"\$(HibernateProxy|ByteBuddy|MockitoMock)\$\w+", r"$\1$<auto>"),
        (r"\$\$(?:ByteBuddy|MockitoMock)\$\$\w+", "$$ByteBuddy$$<auto>"),
        (r"\bGenerated(Serialization)?(Method|Constructor)Accessor\d+", r"Generated\1\2Accessor"),
        (r"(?:com\.sun\.proxy|jdk\.proxy\d*)\.\$Proxy\d+", "$Proxy"),
        (r"\$Proxy\d+", "$Proxy"),
    )
)
_JAVA_NUMBERED_METHOD = re.compile(r"^(lambda\$.*\$|access\$)\d+$")


def java_class(name: str) -> str:
    for pattern, replacement in _JAVA_GENERATED:
        name = pattern.sub(replacement, name)
    return name


# --- C# --------------------------------------------------------------------------------------

_CSHARP_GENERATED = re.compile(r"(<[^<>]*>(?:c__DisplayClass|d__|b__|c|g__\w+\|)?)[0-9_]+")
_CSHARP_LAMBDA_METHOD = re.compile(r"^lambda_method\d+$")


def csharp_name(name: str) -> str:
    """A type or method name without compiler-generated numbers, parameters or return type."""
    name = _drop_parameters(name)
    name = _after_return_type(name)
    name = _CSHARP_LAMBDA_METHOD.sub("lambda_method", name)
    return _CSHARP_GENERATED.sub(r"\1", name)


# --- Ruby and PHP ----------------------------------------------------------------------------

_RUBY_BLOCK_LEVELS = re.compile(r"^block \(\d+ levels\) in ")
_RUBY_ERB = re.compile(r"__\d+_\d+$")
_RUBY_OBJECT = re.compile(r"#<(\w+):0x[0-9a-fA-F]+>")
_PHP_CLOSURE_LINE = re.compile(r"\{closure:(.*?)(?::\d+)?\}")
_PHP_ANONYMOUS_CLASS = re.compile(r"class@anonymous[^:\s]*(?::\d+)?(?:\$[0-9a-fA-F]+)?")


def ruby_function(name: str) -> str:
    name = _RUBY_BLOCK_LEVELS.sub("block in ", name)
    return _RUBY_OBJECT.sub(r"#<\1>", _RUBY_ERB.sub("", name))


def php_function(name: str) -> str:
    name = _PHP_ANONYMOUS_CLASS.sub("class@anonymous", name.replace("\x00", ""))
    return _PHP_CLOSURE_LINE.sub(r"{closure:\1}", name)


# --- Native ----------------------------------------------------------------------------------

_ADDRESS = re.compile(r"^(?:0x)?[0-9a-fA-F]{6,}$")
_UNKNOWN = frozenset({"", "?", "??", "<unknown>", "unknown", "<redacted>", "_mh_execute_header"})
_OFFSET = re.compile(r"\s*\+\s*(?:0x[0-9a-fA-F]+|\d+)$")
_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
_SWIFT_PREFIX = re.compile(
    r"^(?:@objc |specialized |merged |partial apply for |(?:reabstraction )?thunk for |"
    r"protocol witness for |dispatch thunk of |static )+")
_SWIFT_CLOSURE = re.compile(r"closure #\d+")


def native_function(name: str) -> str:
    """A native symbol as a stable name: no address, offset, parameters, return type, template
    arguments or Rust hash. "" for an unknown or address-only frame."""
    name = _OFFSET.sub("", name).strip()
    if name in _UNKNOWN or _ADDRESS.match(name):
        return ""
    name = _RUST_HASH.sub("", name)
    if name.startswith(("-[", "+[")):
        return name  # an Objective-C method says exactly what it is
    name = _SWIFT_PREFIX.sub("", name)
    name = _SWIFT_CLOSURE.sub("closure", name)
    name = _drop_parameters(name)
    name = _collapse_templates(name)
    return _after_return_type(name)


def _drop_parameters(name: str) -> str:
    """``f(int, char const*) const`` is ``f``: the trailing balanced parameter list goes."""
    end = name.rstrip()
    for suffix in (" const", " volatile", " &&", " &", " noexcept"):
        end = end.removesuffix(suffix)
    if not end.endswith(")"):
        return name
    depth = 0
    for index in range(len(end) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(end[index], 0)
        if depth == 0:
            return end[:index].rstrip() if index > 0 else name
    return name


def _collapse_templates(name: str) -> str:
    """Top-level template arguments (``vector<int>``) become ``<T>``."""
    out: list[str] = []
    depth = 0
    for char in name:
        if char == "<":
            if depth == 0:
                out.append("<T>")
            depth += 1
        elif char == ">" and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def _after_return_type(name: str) -> str:
    """``void ns::f`` is ``ns::f``: text before the last top-level space is a return type or a
    modifier. Swift's ``closure in f`` keeps its words."""
    if " in " in name:
        return name
    depth = 0
    cut = -1
    for index, char in enumerate(name):
        if char in "<([":
            depth += 1
        elif char in ">)]":
            depth = max(0, depth - 1)
        elif char == " " and depth == 0:
            cut = index
    return name[cut + 1:] if cut >= 0 else name


# --- dispatch --------------------------------------------------------------------------------


def _module(module: str, platform: str) -> str:
    if platform in JAVA:
        return java_class(module)
    if platform in CSHARP:
        return csharp_name(module)
    if platform in JAVASCRIPT:
        return _PACKAGE_VERSION.sub("", module)
    return module


def _function(name: str, platform: str) -> str:
    if not name:
        return ""
    if platform in JAVASCRIPT:
        return javascript_function(name)
    if platform in JAVA:
        return _JAVA_NUMBERED_METHOD.sub(r"\1", java_class(name))
    if platform in CSHARP:
        return csharp_name(name)
    if platform == "ruby":
        return ruby_function(name)
    if platform == "php":
        return php_function(name)
    return "" if name in ("?", "<unknown>") else name


def _context_line(frame: dict[str, Any]) -> str:
    line = frame.get("context_line")
    if not isinstance(line, str) or len(line) > CONTEXT_LINE_LIMIT:
        return ""
    return " ".join(line.split())
