"""Grouping v2's frame normalisation, platform by platform: pairs of frames that must count the
same (what changes between builds, deploys and runs) and pairs that must not (another function,
module or file)."""

from __future__ import annotations

from typing import Any

import pytest

from shim.core.grouping_v2.frames import NAME_LIMIT, frame_key

Frame = dict[str, Any]

# (platform, frame, frame, same?)
PAIRS: dict[str, tuple[str, Frame, Frame, bool]] = {
    # Python and the rest: module and function; never line numbers or paths.
    "python: lines and paths": ("python",
        {"module": "app.ocr", "function": "read", "lineno": 3, "abs_path": "/a/app/ocr.py"},
        {"module": "app.ocr", "function": "read", "lineno": 90, "abs_path": "/b/app/ocr.py"},
        True),
    "python: another function": ("python", {"module": "app.ocr", "function": "read"},
                                 {"module": "app.ocr", "function": "write"}, False),
    "python: source line only without a function": ("python",
        {"module": "app", "function": "?", "context_line": "x = 1"},
        {"module": "app", "context_line": "x  =  1"}, True),
    "python: context line ignored with a function": ("python",
        {"module": "app", "function": "f", "context_line": "a()"},
        {"module": "app", "function": "f", "context_line": "b()"}, True),
    "any: base name of an absolute path": ("go",
        {"filename": "/home/ci/src/app/main.go", "function": "main.run"},
        {"filename": "C:\\build\\app\\main.go", "function": "main.run"}, True),
    "any: relative paths as sent": ("ruby", {"filename": "app/models/user.rb", "function": "x"},
                                    {"filename": "lib/user.rb", "function": "x"}, False),
    # JavaScript
    "js: origin, query, fragment": ("javascript",
        {"filename": "https://a.example/static/app.js?v=1#x", "function": "render"},
        {"filename": "https://cdn.example/static/app.js", "function": "render"}, True),
    "js: content hash in the name": ("javascript",
        {"filename": "https://a.example/js/main.3f2a1b9c.js", "function": "render"},
        {"filename": "https://a.example/js/main.77aa0b12.js", "function": "render"}, True),
    "js: hash after a dash (vite)": ("javascript",
        {"filename": "/assets/index-4F2A3B1C.js", "function": "render"},
        {"filename": "/assets/index-9D8E7F6A.js", "function": "render"}, True),
    "js: chunk ids": ("javascript",
        {"filename": "/static/js/123.8e9f0a1b.chunk.js", "function": "load"},
        {"filename": "/static/js/456.0c1d2e3f.chunk.js", "function": "load"}, True),
    "js: version directories": ("javascript",
        {"filename": "https://cdn.example/lib/1.4.2/lib.min.js", "function": "go_on"},
        {"filename": "https://cdn.example/lib/1.5.0/lib.min.js", "function": "go_on"}, True),
    "js: package versions": ("node",
        {"filename": "/app/node_modules/.pnpm/express@4.18.2/index.js", "function": "handle"},
        {"filename": "/app/node_modules/.pnpm/express@4.19.0/index.js", "function": "handle"},
        True),
    "js: another file": ("javascript", {"filename": "/js/cart.js", "function": "render"},
                         {"filename": "/js/checkout.js", "function": "render"}, False),
    "js: another directory": ("javascript", {"filename": "/admin/app.js", "function": "render"},
                              {"filename": "/shop/app.js", "function": "render"}, False),
    "js: anonymous spellings": ("javascript",
        {"filename": "/a.js", "function": "<anonymous>", "context_line": "go()"},
        {"filename": "/a.js", "function": "render/<", "context_line": "go()"}, True),
    "js: Object.? is anonymous": ("node",
        {"module": "run", "function": "Object.?", "context_line": "main();"},
        {"module": "run", "function": "?", "context_line": "main();"}, True),
    "js: minified names say nothing": ("javascript",
        {"filename": "/app.min.js", "function": "t"}, {"filename": "/app.min.js", "function": "Ro"},
        True),
    "js: alias suffix": ("node", {"module": "run_main", "function": "Function.run [as runMain]"},
                         {"module": "run_main", "function": "run"}, True),
    "js: V8 receivers": ("javascript", {"filename": "/cart.js", "function": "Module.renderCart"},
                         {"filename": "/cart.js", "function": "renderCart"}, True),
    "js: Object.<anonymous>": ("node",
        {"module": "run", "function": "Object.<anonymous>", "context_line": "main();"},
        {"module": "run", "function": "?", "context_line": "main();"}, True),
    "js: real short-ish names count": ("javascript",
        {"filename": "/a.js", "function": "run"}, {"filename": "/a.js", "function": "add"}, False),
    # Java
    "java: CGLIB": ("java",
        {"module": "com.a.S$$EnhancerBySpringCGLIB$$8a3f2c1d", "function": "total"},
        {"module": "com.a.S$$EnhancerBySpringCGLIB$$1b2c3d4e", "function": "total"}, True),
    "java: CGLIB fast class": ("java",
        {"module": "com.a.S$$FastClassBySpringCGLIB$$8a3f2c1d", "function": "invoke"},
        {"module": "com.a.S$$FastClassBySpringCGLIB$$0000ffff", "function": "invoke"}, True),
    "java: lambda classes": ("java",
        {"module": "com.a.B$$Lambda$123/0x0000000800c4b040", "function": "accept"},
        {"module": "com.a.B$$Lambda/0x000000080104e3b8", "function": "accept"}, True),
    "java: lambda methods": ("java", {"module": "com.a.B", "function": "lambda$run$0"},
                             {"module": "com.a.B", "function": "lambda$run$12"}, True),
    "java: lambdas of other methods": ("java", {"module": "com.a.B", "function": "lambda$run$0"},
                                       {"module": "com.a.B", "function": "lambda$stop$0"}, False),
    "java: javassist": ("java", {"module": "com.a.I_$$_javassist_17", "function": "get"},
                        {"module": "com.a.I_$$_jvst4a1_203", "function": "get"}, True),
    "java: hibernate": ("java", {"module": "com.a.C$HibernateProxy$fT3c9Xa1", "function": "get"},
                        {"module": "com.a.C$HibernateProxy$Qm81ZpLw", "function": "get"}, True),
    "java: bytebuddy": ("java", {"module": "com.a.C$ByteBuddy$abc123", "function": "get"},
                        {"module": "com.a.C$ByteBuddy$zz9", "function": "get"}, True),
    "java: reflection accessors": ("java",
        {"module": "jdk.internal.reflect.GeneratedMethodAccessor12", "function": "invoke"},
        {"module": "jdk.internal.reflect.GeneratedMethodAccessor87", "function": "invoke"}, True),
    "java: JDK proxies": ("java", {"module": "com.sun.proxy.$Proxy45", "function": "run"},
                          {"module": "jdk.proxy2.$Proxy12", "function": "run"}, True),
    "java: access methods": ("java", {"module": "com.a.B", "function": "access$000"},
                             {"module": "com.a.B", "function": "access$100"}, True),
    "java: another class": ("java", {"module": "com.a.B", "function": "run"},
                            {"module": "com.a.C", "function": "run"}, False),
    # C#
    "csharp: async state machines": ("csharp",
        {"module": "Shop.Orders", "function": "<GetAsync>d__5.MoveNext()"},
        {"module": "Shop.Orders", "function": "<GetAsync>d__17.MoveNext()"}, True),
    "csharp: display classes": ("csharp",
        {"module": "Shop.Orders+<>c__DisplayClass5_0", "function": "<GetAsync>b__0(Order o)"},
        {"module": "Shop.Orders+<>c__DisplayClass7_1", "function": "<GetAsync>b__3(Order o)"},
        True),
    "csharp: demystified signatures": ("csharp",
        {"module": "Shop.Orders", "function": "async Task<Order> Orders.GetAsync(int id)"},
        {"module": "Shop.Orders", "function": "Orders.GetAsync(int id, CancellationToken t)"},
        True),
    "csharp: another method": ("csharp", {"module": "Shop.Orders", "function": "GetAsync()"},
                               {"module": "Shop.Orders", "function": "PutAsync()"}, False),
    # Native
    "native: parameters, const, offsets, addresses": ("native",
        {"function": "app::Parser::parse(char const*, unsigned long) const",
         "instruction_addr": "0x1000", "package": "/a/app"},
        {"function": "app::Parser::parse + 0x1f", "instruction_addr": "0x2000",
         "package": "/b/app"}, True),
    "native: return types and templates": ("native",
        {"function": "void std::vector<int, std::allocator<int> >::push_back(int const&)"},
        {"function": "std::vector<long>::push_back(long&&)"}, True),
    "native: raw_function and symbol when no function": ("native",
        {"raw_function": "app::run()"}, {"symbol": "app::run"}, True),
    "native: file names never count": ("native", {"function": "run", "filename": "a.cpp"},
                                       {"function": "run", "filename": "b.cpp"}, True),
    "native: rust hashes": ("native", {"function": "app::handler::h1a2b3c4d5e6f7a8b"},
                            {"function": "app::handler::h9f8e7d6c5b4a3921"}, True),
    "native: another function": ("native", {"function": "app::Parser::parse()"},
                                 {"function": "app::Parser::scan()"}, False),
    "cocoa: objective-c as written": ("cocoa", {"function": "-[Cache store:]"},
                                      {"function": "-[Cache load:]"}, False),
    "cocoa: swift decorations": ("cocoa",
        {"function": "closure #1 in ViewController.viewDidLoad()"},
        {"function": "specialized closure #2 in ViewController.viewDidLoad()"}, True),
    "cocoa: swift thunks": ("cocoa", {"function": "@objc ViewController.tapped(_:)"},
                            {"function": "ViewController.tapped(_:)"}, True),
    "cocoa: frame platform wins": ("javascript",
        {"function": "app::run(int)", "platform": "native", "filename": "a.js"},
        {"function": "app::run", "platform": "native", "filename": "b.js"}, True),
    # Ruby and PHP
    "ruby: block levels": ("ruby", {"filename": "app/x.rb", "function": "block (2 levels) in run"},
                           {"filename": "app/x.rb", "function": "block (4 levels) in run"}, True),
    "ruby: erb methods": ("ruby",
        {"filename": "app/views/a.erb", "function": "_app_views_a_html_erb__4129834719287_70248"},
        {"filename": "app/views/a.erb", "function": "_app_views_a_html_erb__33817_81920"}, True),
    "ruby: object addresses": ("ruby",
        {"filename": "a.rb", "function": "#<Class:0x000055d5c8a1b2c3>.call"},
        {"filename": "a.rb", "function": "#<Class:0x00007f0000000001>.call"}, True),
    "php: closures lose their line": ("php",
        {"filename": "app/Jobs/Import.php", "function": "{closure:App\\Import::handle():31}"},
        {"filename": "app/Jobs/Import.php", "function": "{closure:App\\Import::handle():35}"},
        True),
    "php: anonymous classes": ("php",
        {"filename": "src/K.php", "function": "class@anonymous\x00/var/www/src/K.php:12$0::boot"},
        {"filename": "src/K.php", "function": "class@anonymous/srv/src/K.php:14$1a::boot"}, True),
    "php: another method": ("php", {"filename": "src/A.php", "function": "App\\A::show"},
                            {"filename": "src/A.php", "function": "App\\A::edit"}, False),
}


@pytest.mark.parametrize(("platform", "left", "right", "same"), PAIRS.values(), ids=PAIRS.keys())
def test_frames_count_the_same_only_when_they_should(platform: str, left: Frame, right: Frame,
                                                     same: bool) -> None:
    first, second = frame_key(left, platform), frame_key(right, platform)
    assert first is not None and second is not None
    assert (first == second) is same, (first, second)


SILENT: dict[str, tuple[str, Frame]] = {
    "node internals": ("node", {"filename": "node:internal/timers", "function": "listOnTimeout"}),
    "old node internals": ("node", {"filename": "internal/process/task_queues.js",
                                    "function": "processTicksAndRejections"}),
    "node: modules": ("node", {"filename": "node:async_hooks", "module": "node:async_hooks",
                               "function": "run"}),
    "safari native code": ("javascript", {"filename": "[native code]", "function": "forEach"}),
    "native address only": ("native", {"instruction_addr": "0x1000a2b3c", "function": "0x1000a2b3c"}),
    "native unknown": ("native", {"function": "<unknown>", "package": "/usr/lib/libc.so"}),
    "empty frame": ("python", {"lineno": 4}),
    "minified line too long": ("javascript", {"function": "t", "context_line": "x" * 500}),
}


@pytest.mark.parametrize(("platform", "frame"), SILENT.values(), ids=SILENT.keys())
def test_frames_that_say_nothing_never_count(platform: str, frame: Frame) -> None:
    assert frame_key(frame, platform) is None


HUGE = {
    "spaces before an offset": " " * 1_000_000,
    "php closures": "{closure:" * 100_000,
    "java generated": "$$EnhancerByCGLIB" * 50_000,
    "templates": "<" * 1_000_000,
    "c# generated": "<a" * 500_000,
}


@pytest.mark.parametrize("platform", ["native", "php", "java", "csharp", "javascript", "ruby"])
@pytest.mark.parametrize("text", HUGE.values(), ids=HUGE.keys())
def test_only_a_bounded_prefix_of_a_name_is_read(platform: str, text: str) -> None:
    # Every pattern then runs over at most NAME_LIMIT characters, whatever the event sends.
    frame = {"function": text, "module": text, "filename": text}
    bounded = {key: value[:NAME_LIMIT] for key, value in frame.items()}
    assert frame_key(frame, platform) == frame_key(bounded, platform)
