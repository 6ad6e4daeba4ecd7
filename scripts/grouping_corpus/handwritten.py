#!/usr/bin/env python3
"""The hand-written part of the grouping corpus: events of the platforms and interfaces no SDK in
this repository produces, in the shapes Sentry's developer docs give for the event payload
(exception, stacktrace and frame, threads, template, message/logentry, the CSP, Expect-CT,
Expect-Staple and HPKP reports) and that each platform's SDK fills in.

    python scripts/grouping_corpus/handwritten.py     # writes tests/fixtures/grouping/handwritten.jsonl

Each event is written beside the group it belongs to, labelled by hand from the documented rules
(the reason for every group is in ``tests/fixtures/grouping/manifest.json``). Variants of one group
change what must not matter (ids, addresses, line numbers, deploy paths, build hashes, generated
class names, numbers in values); near misses change one thing that must.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "grouping" / "handwritten.jsonl"
RECORDS: list[dict[str, Any]] = []


def add(group: str, category: str, event: dict[str, Any]) -> None:
    number = len(RECORDS)
    event = {"event_id": uuid.UUID(int=number + 1).hex, **event}
    RECORDS.append({"group": group, "platform": category, "source": "handwritten", "event": event})


def frame(function: str | None = None, module: str | None = None, filename: str | None = None,
          lineno: int | None = None, in_app: bool | None = None, **extra: Any) -> dict[str, Any]:
    found = {"function": function, "module": module, "filename": filename, "lineno": lineno,
             "in_app": in_app, **extra}
    return {k: v for k, v in found.items() if v is not None}


def exc(type_: str | None, value: str | None, frames: list[dict[str, Any]] | None = None,
        **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"type": type_, "value": value, **extra}
    if frames is not None:
        found["stacktrace"] = {"frames": frames}
    return {k: v for k, v in found.items() if v is not None}


def error(platform: str, *values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"platform": platform, "level": "error", "exception": {"values": list(values)}, **extra}


# --- Java ------------------------------------------------------------------------------------

def java_order(proxy: str, line: int, local: str, method: str = "total") -> dict[str, Any]:
    return error("java", exc("NullPointerException", f'Cannot invoke "String.length()" because '
                             f'"{local}" is null', [
        frame("doFilter", "org.apache.catalina.core.ApplicationFilterChain",
              "ApplicationFilterChain.java", 166, False),
        frame("show", "com.shop.web.OrderController", "OrderController.java", 31 + line, True),
        frame(method, f"com.shop.OrderService$$EnhancerBySpringCGLIB$${proxy}", None, None, True),
        frame(method, "com.shop.OrderService", "OrderService.java", 57 + line, True),
    ], module="java.lang"))


add("java-npe-order-total", "java", java_order("8a3f2c1d", 0, "<local1>"))
add("java-npe-order-total", "java", java_order("1b2c3d4e", 4, "<local4>"))
add("java-npe-order-total", "java", java_order("77e0aa12", 9, "order.note"))
add("java-npe-order-invoice", "java", java_order("8a3f2c1d", 0, "<local1>", "invoice"))


def java_lambda(generated: str, lambda_name: str, line: int) -> dict[str, Any]:
    return error("java", exc("IllegalStateException", f"batch {line} already closed", [
        frame("main", "com.shop.Main", "Main.java", 12, True),
        frame("run", "com.shop.Batch", "Batch.java", 40 + line, True),
        frame("forEach", "java.util.ArrayList", "ArrayList.java", 1596, False),
        frame("accept", generated, None, None, True),
        frame(lambda_name, "com.shop.Batch", "Batch.java", 44 + line, True),
    ], module="java.lang"))


add("java-lambda-batch", "java", java_lambda("com.shop.Batch$$Lambda$123/0x0000000800c4b040",
                                             "lambda$run$0", 0))
add("java-lambda-batch", "java", java_lambda("com.shop.Batch$$Lambda$457/0x0000000800d01a38",
                                             "lambda$run$2", 3))
add("java-lambda-batch", "java", java_lambda("com.shop.Batch$$Lambda/0x000000080104e3b8",
                                             "lambda$run$1", 7))  # Java 21 hidden classes


def java_proxy(cls: str, type_: str, function: str, number: int) -> dict[str, Any]:
    return error("java", exc(type_, f"could not initialize proxy [com.shop.Customer#{number}]", [
        frame("render", "com.shop.web.CustomerView", "CustomerView.java", 20 + number % 5, True),
        frame(function, cls, None, None, True),
    ]))


LAZY = "org.hibernate.LazyInitializationException"
add("java-hibernate-proxy", "java",
    java_proxy("com.shop.Customer$HibernateProxy$fT3c9Xa1", LAZY, "getName", 17))
add("java-hibernate-proxy", "java",
    java_proxy("com.shop.Customer$HibernateProxy$Qm81ZpLw", LAZY, "getName", 4242))
add("java-javassist-proxy", "java",
    java_proxy("com.shop.Invoice_$$_javassist_17", LAZY, "getTotal", 3))
add("java-javassist-proxy", "java",
    java_proxy("com.shop.Invoice_$$_jvst4a1_203", LAZY, "getTotal", 99))
add("java-bytebuddy-mock", "java",
    java_proxy("com.shop.Mailer$MockitoMock$1029384756", "java.lang.IllegalArgumentException",
               "send", 1))
add("java-bytebuddy-mock", "java",
    java_proxy("com.shop.Mailer$MockitoMock$5647382910", "java.lang.IllegalArgumentException",
               "send", 2))


def java_quartz(accessor: int, proxy: str, function: str = "execute") -> dict[str, Any]:
    # No frame in app: every frame counts, the generated ones normalised.
    return error("java", exc("org.quartz.JobExecutionException", f"job {accessor} failed", [
        frame("run", "org.quartz.core.JobRunShell", "JobRunShell.java", 202),
        frame("invoke", f"jdk.internal.reflect.GeneratedMethodAccessor{accessor}"),
        frame(function, proxy),
    ]))


add("java-quartz-reflection", "java", java_quartz(12, "com.sun.proxy.$Proxy45"))
add("java-quartz-reflection", "java", java_quartz(87, "jdk.proxy2.$Proxy12"))
add("java-quartz-interrupt", "java", java_quartz(12, "com.sun.proxy.$Proxy45", "interrupt"))


def java_chain(with_cause: bool, line: int) -> dict[str, Any]:
    values = []
    if with_cause:
        values.append(exc("java.sql.SQLException", f"Connection is closed (id {line})", [
            frame("load", "com.shop.db.Repo", "Repo.java", 80 + line, True)]))
    values.append(exc("org.springframework.dao.DataAccessResourceFailureException",
                      "could not load order", [
                          frame("load", "com.shop.OrderService", "OrderService.java", 20 + line,
                                True)]))
    return error("java", *values)


add("java-chain-dataaccess", "java", java_chain(True, 0))
add("java-chain-dataaccess", "java", java_chain(True, 6))
add("java-dataaccess-no-cause", "java", java_chain(False, 0))

# --- native ----------------------------------------------------------------------------------


def native_segv(parse: str, memcpy_addr: str, where: str = "parse") -> dict[str, Any]:
    cls = "Parser" if where == "parse" else "Renderer"
    return error("native", exc("SIGSEGV", "Segfault", [
        frame("main", instruction_addr="0x100003f2c", package="/opt/app/bin/scan", in_app=True,
              filename="main.cpp", lineno=40),
        frame(parse.replace("Parser::parse", f"{cls}::{where}"), instruction_addr=memcpy_addr,
              package="/opt/app/bin/scan", in_app=True),
        frame("memcpy", instruction_addr="0x7ff81a2b3c4d", package="/usr/lib/libc.so.6",
              in_app=False),
    ], mechanism={"type": "signalhandler", "handled": False}))


add("native-segv-parser", "native",
    native_segv("app::Parser::parse(char const*, unsigned long)", "0x100004a10"))
add("native-segv-parser", "native",
    native_segv("app::Parser::parse(char const*, unsigned long) const", "0x100004b88"))
add("native-segv-parser", "native", native_segv("app::Parser::parse + 0x1f", "0x1000051c0"))
add("native-segv-renderer", "native",
    native_segv("app::Parser::parse(char const*, unsigned long)", "0x100004a10", "draw"))


def native_template(signature: str, address: str) -> dict[str, Any]:
    return error("native", exc("std::out_of_range", "vector::_M_range_check: __n (which is 7) >= "
                               "this->size() (which is 3)", [
        frame("main", instruction_addr="0x401000", in_app=True),
        frame("app::Index::lookup(unsigned long)", instruction_addr=address, in_app=True),
        frame(signature, instruction_addr="0x402000", in_app=False),
    ]))


add("native-vector-at", "native",
    native_template("std::vector<int, std::allocator<int> >::at(unsigned long)", "0x4011a0"))
add("native-vector-at", "native", native_template("std::vector<int>::at(unsigned long)",
                                                  "0x4013f4"))


def native_unsymbolicated(kind: str, address: str) -> dict[str, Any]:
    # Only addresses: the stack cannot decide, the type and the masked value do.
    return error("native", exc(kind, f"KERN_INVALID_ADDRESS at {address}", [
        frame(instruction_addr="0x1000a2b3c", in_app=True),
        frame(instruction_addr="0x1000a4d5e", in_app=True),
    ], mechanism={"type": "mach", "handled": False}))


add("native-bad-access-unsymbolicated", "native",
    native_unsymbolicated("EXC_BAD_ACCESS", "0x0000000000000010"))
add("native-bad-access-unsymbolicated", "native",
    native_unsymbolicated("EXC_BAD_ACCESS", "0x0000000000000028"))
add("native-bad-instruction-unsymbolicated", "native",
    native_unsymbolicated("EXC_BAD_INSTRUCTION", "0x0000000000000010"))


def rust_panic(hash_: str, function: str = "process") -> dict[str, Any]:
    return error("native", exc("panic", "called `Option::unwrap()` on a `None` value", [
        frame("main", in_app=True),
        frame(f"scanner::handler::{function}::h{hash_}", in_app=True),
        frame("core::panicking::panic::h0123456789abcdef", in_app=False),
    ]))


add("native-rust-unwrap", "native", rust_panic("1a2b3c4d5e6f7a8b"))
add("native-rust-unwrap", "native", rust_panic("9f8e7d6c5b4a3921"))
add("native-rust-unwrap-other", "native", rust_panic("1a2b3c4d5e6f7a8b", "flush"))

# --- Cocoa -----------------------------------------------------------------------------------


def cocoa_selector(instance: str, addresses: tuple[str, str], action: str = "buttonTapped:"):
    return error("cocoa", exc("NSInvalidArgumentException",
                              f"-[__NSCFNumber length]: unrecognized selector sent to instance "
                              f"{instance}", [
        frame("main", instruction_addr=addresses[0], package="/private/var/App.app/App",
              in_app=True),
        frame(f"-[ViewController {action}]", instruction_addr=addresses[1],
              package="/private/var/App.app/App", in_app=True),
        frame("objc_exception_throw", instruction_addr="0x1a2b3c4d",
              package="/usr/lib/libobjc.A.dylib", in_app=False),
    ]))


add("cocoa-unrecognized-selector", "cocoa",
    cocoa_selector("0x600001e8c140", ("0x1000041a0", "0x100008b10")))
add("cocoa-unrecognized-selector", "cocoa",
    cocoa_selector("0x6000039d4a80", ("0x1000051c0", "0x10000a2f0")))
add("cocoa-unrecognized-selector-save", "cocoa",
    cocoa_selector("0x600001e8c140", ("0x1000041a0", "0x100008b10"), "saveTapped:"))


def swift_crash(closure: str, address: str) -> dict[str, Any]:
    return error("cocoa", exc("EXC_BREAKPOINT", "Fatal error: Unexpectedly found nil while "
                              "unwrapping an Optional value", [
        frame("main", instruction_addr="0x100004000", in_app=True),
        frame("ViewController.viewDidLoad()", instruction_addr="0x100004200", in_app=True),
        frame(closure, instruction_addr=address, in_app=True),
    ], mechanism={"type": "mach", "handled": False}))


add("cocoa-swift-closure", "cocoa", swift_crash("closure #1 in ViewController.viewDidLoad()",
                                                "0x100004a00"))
add("cocoa-swift-closure", "cocoa",
    swift_crash("specialized closure #1 in ViewController.viewDidLoad()", "0x100004c40"))
add("cocoa-swift-closure-load", "cocoa", swift_crash("closure #1 in ViewController.load()",
                                                     "0x100004a00"))


def ns_error(code: int) -> dict[str, Any]:
    return error("cocoa", exc("NSURLErrorDomain", f"Code: {code}", mechanism={
        "type": "NSError", "handled": True,
        "meta": {"ns_error": {"domain": "NSURLErrorDomain", "code": code}}}))


add("cocoa-nserror-offline", "cocoa", ns_error(-1009))
add("cocoa-nserror-offline", "cocoa", ns_error(-1009))
add("cocoa-nserror-timeout", "cocoa", ns_error(-1001))


def cocoa_thread_crash(method: str, other: str, address: str) -> dict[str, Any]:
    # The exception has no stack of its own: the crashed thread (thread_id) carries it.
    return {"platform": "cocoa", "level": "fatal",
            "exception": {"values": [exc("EXC_BAD_ACCESS", f"KERN_INVALID_ADDRESS at {address}",
                                         thread_id=0,
                                         mechanism={"type": "mach", "handled": False})]},
            "threads": {"values": [
                {"id": 0, "crashed": True, "current": True, "stacktrace": {"frames": [
                    frame("main", instruction_addr="0x100004000", in_app=True),
                    frame(f"-[Cache {method}]", instruction_addr=address, in_app=True),
                    frame("objc_msgSend", instruction_addr="0x1a000000", in_app=False)]}},
                {"id": 1, "crashed": False, "stacktrace": {"frames": [
                    frame(other, instruction_addr="0x1b000000", in_app=False)]}},
            ]}}


add("cocoa-crashed-thread-store", "cocoa",
    cocoa_thread_crash("store:", "__workq_kernreturn", "0x100008000"))
add("cocoa-crashed-thread-store", "cocoa",
    cocoa_thread_crash("store:", "mach_msg_trap", "0x100009a40"))
add("cocoa-crashed-thread-load", "cocoa",
    cocoa_thread_crash("load:", "__workq_kernreturn", "0x100008000"))

# --- Ruby ------------------------------------------------------------------------------------


def ruby_nomethod(controller: str, block: str, erb: str, value: str) -> dict[str, Any]:
    return error("ruby", exc("NoMethodError", value, [
        frame("call", filename="/usr/local/bundle/gems/rack-3.0.8/lib/rack/head.rb", lineno=15,
              in_app=False),
        frame("show", filename=f"app/controllers/{controller}_controller.rb", lineno=12,
              in_app=True),
        frame(block, filename=f"app/controllers/{controller}_controller.rb", lineno=14,
              in_app=True),
        frame(erb, filename=f"app/views/{controller}/show.html.erb", lineno=3, in_app=True),
        frame("display_name", filename="app/models/user.rb", lineno=22, in_app=True),
    ]))


add("ruby-nomethod-users", "ruby", ruby_nomethod(
    "users", "block (2 levels) in show", "_app_views_users_show_html_erb__4129834719287_70248",
    "undefined method `name' for nil:NilClass"))
add("ruby-nomethod-users", "ruby", ruby_nomethod(
    "users", "block (3 levels) in show", "_app_views_users_show_html_erb__3381726354_81920",
    "undefined method 'name' for nil"))  # Ruby 3.4's wording: the stack decides anyway
add("ruby-nomethod-orders", "ruby", ruby_nomethod(
    "orders", "block (2 levels) in show", "_app_views_orders_show_html_erb__4129834719287_70248",
    "undefined method `name' for nil:NilClass"))


def ruby_not_found(gem: str, number: int) -> dict[str, Any]:
    return error("ruby", exc("ActiveRecord::RecordNotFound",
                             f"Couldn't find Order with 'id'={number}", [
        frame("find_order", filename="app/controllers/orders_controller.rb", lineno=40 + number % 3,
              in_app=True),
        frame("find", filename=f"/usr/local/bundle/gems/{gem}/lib/active_record/core.rb",
              lineno=250, in_app=False),
    ]))


add("ruby-record-not-found", "ruby", ruby_not_found("activerecord-7.1.2", 17))
add("ruby-record-not-found", "ruby", ruby_not_found("activerecord-7.1.3", 4242))

# --- PHP -------------------------------------------------------------------------------------


def php_type_error(release: str, line: int, service: str = "InvoiceService") -> dict[str, Any]:
    base = f"/var/www/releases/{release}"
    return error("php", exc("TypeError", f"App\\Service\\{service}::total(): Argument #1 ($items) "
                            f"must be of type array, null given, called in {base}/src/Controller/"
                            f"InvoiceController.php on line {line}", [
        frame("Symfony\\Component\\HttpKernel\\HttpKernel::handle",
              filename="vendor/symfony/http-kernel/HttpKernel.php",
              abs_path=f"{base}/vendor/symfony/http-kernel/HttpKernel.php", lineno=76,
              in_app=False),
        frame("App\\Controller\\InvoiceController::show",
              filename="src/Controller/InvoiceController.php",
              abs_path=f"{base}/src/Controller/InvoiceController.php", lineno=line, in_app=True),
        frame(f"App\\Service\\{service}::total", filename=f"src/Service/{service}.php",
              abs_path=f"{base}/src/Service/{service}.php", lineno=18, in_app=True),
    ]))


add("php-typeerror-invoice", "php", php_type_error("20261201", 42))
add("php-typeerror-invoice", "php", php_type_error("20261207", 47))
add("php-typeerror-order", "php", php_type_error("20261201", 42, "OrderService"))


def php_closure(function: str, value: str) -> dict[str, Any]:
    return error("php", exc("RuntimeException", value, [
        frame("App\\Jobs\\Import::handle", filename="app/Jobs/Import.php", lineno=28, in_app=True),
        frame("array_map", filename="[internal]", in_app=False),
        frame(function, filename="app/Jobs/Import.php", lineno=31, in_app=True),
    ]))


add("php-closure-import", "php", php_closure("{closure:App\\Jobs\\Import::handle():31}",
                                             "row 17 has no sku"))
add("php-closure-import", "php", php_closure("{closure:App\\Jobs\\Import::handle():35}",
                                             "row 4242 has no sku"))


def php_anonymous_class(suffix: str) -> dict[str, Any]:
    return error("php", exc("LogicException", "kernel booted twice", [
        frame(f"class@anonymous\x00/var/www/src/Kernel.php:12{suffix}::boot",
              filename="src/Kernel.php", lineno=14, in_app=True),
    ]))


add("php-anonymous-class", "php", php_anonymous_class("$0"))
add("php-anonymous-class", "php", php_anonymous_class("$1a"))

# --- C# --------------------------------------------------------------------------------------


def cs_nullref(service: str, state_machine: str, display: str) -> dict[str, Any]:
    return error("csharp", exc("System.NullReferenceException",
                               "Object reference not set to an instance of an object.", [
        frame("Invoke", "Microsoft.AspNetCore.Routing.EndpointMiddleware", in_app=False),
        frame(f"async Task<Order> {service}.GetAsync(int id)", f"Shop.Services.{service}",
              in_app=True),
        frame(f"{state_machine}.MoveNext()", f"Shop.Services.{service}", in_app=True),
        frame("<GetAsync>b__0(Order o)", f"Shop.Services.{service}+{display}", in_app=True),
    ], module="System.Private.CoreLib, Version=8.0.0.0, Culture=neutral"))


add("cs-nullref-orders", "csharp",
    cs_nullref("OrderService", "<GetAsync>d__5", "<>c__DisplayClass5_0"))
add("cs-nullref-orders", "csharp",
    cs_nullref("OrderService", "<GetAsync>d__7", "<>c__DisplayClass7_0"))
add("cs-nullref-invoices", "csharp",
    cs_nullref("InvoiceService", "<GetAsync>d__5", "<>c__DisplayClass5_0"))


def cs_timeout(method: str, type_: str = "System.TimeoutException") -> dict[str, Any]:
    return exc(type_, f"The operation has timed out after {len(method) * 7} ms.", [
        frame(f"async Task Sync.{method}()", "Shop.Jobs.Sync", in_app=True)])


def cs_aggregate(*members: dict[str, Any]) -> dict[str, Any]:
    values = [{**member, "mechanism": {"type": "chained", "source": f"InnerExceptions[{n}]",
                                       "exception_id": n + 1, "parent_id": 0}}
              for n, member in enumerate(members)]
    root = exc("System.AggregateException", "One or more errors occurred.", [
        frame("async Task Sync.RunAsync()", "Shop.Jobs.Sync", in_app=True)],
        mechanism={"type": "generic", "is_exception_group": True, "exception_id": 0})
    return error("csharp", *reversed(values), root)


# One distinct member: the event groups as that member would alone (Sentry's exception-group RFC).
add("cs-sync-pull-timeout", "csharp", error("csharp", cs_timeout("PullAsync")))
add("cs-sync-pull-timeout", "csharp", cs_aggregate(cs_timeout("PullAsync"), cs_timeout("PullAsync")))
add("cs-sync-mixed", "csharp", cs_aggregate(
    cs_timeout("PullAsync"), cs_timeout("PushAsync", "System.Net.Http.HttpRequestException")))
add("cs-sync-mixed", "csharp", cs_aggregate(
    cs_timeout("PushAsync", "System.Net.Http.HttpRequestException"), cs_timeout("PullAsync"),
    cs_timeout("PullAsync")))

# --- JavaScript in a browser -----------------------------------------------------------------


def browser_cart(main: str, vendor: str, value: str, host: str = "shop.example.com"):
    return error("javascript", exc("TypeError", value, [
        frame("Object.render", filename=f"https://{host}/static/js/{vendor}", lineno=2, colno=9120,
              in_app=False),
        frame("CartPage", filename=f"https://{host}/static/js/{main}", lineno=1, colno=3310,
              in_app=True),
        frame("renderCart", filename=f"https://{host}/static/js/{main}", lineno=1, colno=8812,
              in_app=True),
    ]))


add("js-browser-cart", "javascript", browser_cart(
    "main.3f2a1b9c.js", "vendors~main.81ac9e2f.chunk.js",
    "Cannot read properties of undefined (reading 'id')"))
add("js-browser-cart", "javascript", browser_cart(
    "main.77aa0b12.js?v=2", "vendors~main.0b1c2d3e.chunk.js", "e is undefined",
    "cdn.example.net"))  # Firefox's wording, another build and host: the stack decides
add("js-browser-cart", "javascript", browser_cart(
    "main.3f2a1b9c.js#top", "vendors~main.81ac9e2f.chunk.js",
    "Cannot read properties of undefined (reading 'sku')"))


def browser_minified(main: str, functions: tuple[str, str], value: str) -> dict[str, Any]:
    # Minified, no source maps: the functions say nothing, the value decides with the file.
    return error("javascript", exc("TypeError", value, [
        frame(functions[0], filename=f"https://shop.example.com/assets/{main}", colno=40211,
              in_app=True, context_line="!function(e){var t={};" + "x" * 200),
        frame(functions[1], filename=f"https://shop.example.com/assets/{main}", colno=40877,
              in_app=True),
    ]))


add("js-minified-price", "javascript", browser_minified(
    "app-4F2A3B1C.min.js", ("t", "n"), "Cannot read properties of null (reading 'price')"))
add("js-minified-price", "javascript", browser_minified(
    "app-9D8E7F6A.min.js", ("e", "Ro"), "Cannot read properties of null (reading 'price')"))
add("js-minified-map", "javascript", browser_minified(
    "app-4F2A3B1C.min.js", ("t", "n"), "Cannot read properties of undefined (reading 'map')"))


def browser_anonymous(function: str, build: str) -> dict[str, Any]:
    return error("javascript", exc("RangeError", "Invalid array length", [
        frame("renderTotals", filename=f"https://shop.example.com/static/js/main.{build}.js",
              in_app=True),
        frame(function, filename=f"https://shop.example.com/static/js/main.{build}.js",
              in_app=True, context_line="  items.forEach((item) => totals.push(item.price));"),
    ]))


add("js-anonymous-totals", "javascript", browser_anonymous("<anonymous>", "3f2a1b9c"))
add("js-anonymous-totals", "javascript", browser_anonymous("renderTotals/<", "77aa0b12"))
add("js-anonymous-totals", "javascript", browser_anonymous("?", "0c0ffee1"))


def browser_widget(version: str, chunk: int) -> dict[str, Any]:
    return error("javascript", exc("ChunkLoadError", f"Loading chunk {chunk} failed.", [
        frame("loadWidget", filename=f"https://cdn.example.com/widget/{version}/widget.min.js",
              in_app=True),
        frame("__webpack_require__.e",
              filename=f"https://cdn.example.com/widget/{version}/{chunk}.chunk.js", in_app=True),
    ]))


add("js-widget-chunk", "javascript", browser_widget("1.4.2", 123))
add("js-widget-chunk", "javascript", browser_widget("1.4.3", 456))
add("js-widget-chunk", "javascript", browser_widget("v2", 77))

# --- interfaces without an exception ---------------------------------------------------------


def crashed_threads(function: str, other: str) -> dict[str, Any]:
    return {"platform": "java", "level": "fatal", "threads": {"values": [
        {"id": 1, "name": "main", "crashed": True, "stacktrace": {"frames": [
            frame("loop", "android.os.Looper", in_app=False),
            frame(function, "com.shop.ui.CartActivity", lineno=88, in_app=True)]}},
        {"id": 2, "name": "worker", "stacktrace": {"frames": [
            frame(other, "java.lang.Object", in_app=False)]}},
    ]}}


add("if-threads-crashed-cart", "interfaces", crashed_threads("onResume", "wait"))
add("if-threads-crashed-cart", "interfaces", crashed_threads("onResume", "sleep"))
add("if-threads-crashed-checkout", "interfaces", crashed_threads("onPause", "wait"))


def current_thread(function: str, line: int) -> dict[str, Any]:
    return {"platform": "python", "level": "error", "threads": {"values": [
        {"id": 7, "current": True, "stacktrace": {"frames": [
            frame("run", "scanner.watchdog", lineno=10, in_app=True),
            frame(function, "scanner.watchdog", lineno=line, in_app=True)]}}]}}


add("if-threads-current-stall", "interfaces", current_thread("check_stall", 30))
add("if-threads-current-stall", "interfaces", current_thread("check_stall", 34))
add("if-threads-current-leak", "interfaces", current_thread("check_leak", 30))


def bare_stacktrace(function: str, line: int, path: str) -> dict[str, Any]:
    return {"platform": "python", "level": "error", "stacktrace": {"frames": [
        frame("main", "jobs.nightly", f"{path}/jobs/nightly.py", 5, True),
        frame(function, "jobs.nightly", f"{path}/jobs/nightly.py", line, True)]}}


add("if-stacktrace-export", "interfaces", bare_stacktrace("export", 40, "/srv/a"))
add("if-stacktrace-export", "interfaces", bare_stacktrace("export", 52, "/srv/b"))
add("if-stacktrace-cleanup", "interfaces", bare_stacktrace("cleanup", 40, "/srv/a"))


def csp(directive: str, blocked: str, document: str, raw: bool = False) -> dict[str, Any]:
    if raw:  # the browser's own report body
        return {"platform": "javascript", "csp-report": {
            "effective-directive": directive, "blocked-uri": blocked, "document-uri": document,
            "violated-directive": f"{directive} 'self'"}}
    return {"platform": "javascript", "level": "error", "csp": {
        "effective_directive": directive, "blocked_uri": blocked, "document_uri": document,
        "violated_directive": f"{directive} 'self'", "original_policy": f"{directive} 'self'"}}


add("if-csp-script-evil", "interfaces", csp("script-src", "https://evil.example.net/x.js?1",
                                            "https://shop.example.com/cart"))
add("if-csp-script-evil", "interfaces", csp("script-src", "https://evil.example.net/y/z.js",
                                            "https://shop.example.com/account/7"))
add("if-csp-script-evil", "interfaces", csp("script-src", "https://evil.example.net/x.js",
                                            "https://shop.example.com/", raw=True))
add("if-csp-script-other-host", "interfaces", csp("script-src", "https://ads.example.org/a.js",
                                                  "https://shop.example.com/cart"))
add("if-csp-img-evil", "interfaces", csp("img-src", "https://evil.example.net/p.gif",
                                         "https://shop.example.com/cart"))
add("if-csp-inline-script", "interfaces", csp("script-src", "inline",
                                              "https://shop.example.com/cart"))
add("if-csp-inline-script", "interfaces", csp("script-src", "inline",
                                              "https://shop.example.com/help"))
add("if-csp-eval", "interfaces", csp("script-src", "eval", "https://shop.example.com/cart"))


def security_report(key: str, hostname: str, port: int) -> dict[str, Any]:
    report = {"hostname": hostname, "port": port,
              "date_time": f"2026-12-0{port % 9 + 1}T10:00:00Z",
              "effective_expiration_date": "2027-01-01T00:00:00Z"}
    return {"platform": "javascript", "level": "error", key: report}


add("if-expectct-www", "interfaces", security_report("expectct", "www.example.com", 443))
add("if-expectct-www", "interfaces", security_report("expectct", "www.example.com", 8443))
add("if-expectct-api", "interfaces", security_report("expectct", "api.example.com", 443))
add("if-expectstaple-www", "interfaces", security_report("expectstaple", "www.example.com", 443))
add("if-expectstaple-www", "interfaces", security_report("expectstaple", "WWW.example.com", 444))
add("if-hpkp-api", "interfaces", security_report("hpkp", "api.example.com", 443))
add("if-hpkp-api", "interfaces", security_report("hpkp", "api.example.com", 8443))


def template(path: str, line: int, source: str) -> dict[str, Any]:
    return {"platform": "python", "level": "error", "template": {
        "filename": "templates/cart.html", "abs_path": f"{path}/templates/cart.html",
        "lineno": line, "context_line": source,
        "pre_context": ["{% block body %}"], "post_context": ["{% endblock %}"]}}


add("if-template-cart-total", "interfaces", template("/srv/a", 12, "{{ cart.total|money }}"))
add("if-template-cart-total", "interfaces", template("/srv/b", 15, "  {{ cart.total|money }}"))
add("if-template-cart-items", "interfaces", template("/srv/a", 12, "{{ cart.items|length }}"))


def logentry(template_: str, params: list[Any]) -> dict[str, Any]:
    return {"platform": "other", "level": "error", "logger": "billing",
            "logentry": {"message": template_, "params": params,
                         "formatted": template_.replace("%s", "{}").format(*params)}}


add("if-logentry-charge", "interfaces", logentry("charge %s failed for customer %s", ["ch_1", 7]))
add("if-logentry-charge", "interfaces", logentry("charge %s failed for customer %s", ["ch_9", 80]))
add("if-logentry-refund", "interfaces", logentry("refund %s failed for customer %s", ["re_1", 7]))


def empty(**extra: Any) -> dict[str, Any]:
    return {"platform": "python", "level": "error", **extra}


# Nothing in common: each its own group, never one bug for all that lack a message.
add("if-empty-1", "interfaces", empty())
add("if-empty-2", "interfaces", empty())
add("if-empty-3", "interfaces", {"platform": "javascript", "level": "warning"})
add("if-empty-logger-cleanup", "interfaces", empty(logger="cron.cleanup"))
add("if-empty-logger-cleanup", "interfaces", empty(logger="cron.cleanup"))
add("if-empty-transaction-orders", "interfaces", empty(transaction="/api/orders"))
add("if-empty-transaction-orders", "interfaces", empty(transaction="/api/orders"))

# --- custom fingerprints with variables -----------------------------------------------------

API = ["api-error", "{{ transaction }}"]
add("custom-api-orders", "custom", {**java_chain(True, 0), "transaction": "/api/orders",
                                    "fingerprint": API})
add("custom-api-orders", "custom", {**ruby_not_found("activerecord-7.1.2", 3),
                                    "transaction": "/api/orders", "fingerprint": API})
add("custom-api-users", "custom", {**ruby_not_found("activerecord-7.1.2", 3),
                                   "transaction": "/api/users", "fingerprint": API})
BY_FUNCTION = ["{{ type }}", "{{ function }}", "{{ level }}"]
add("custom-type-function-error", "custom", {**java_order("8a3f2c1d", 0, "a"),
                                             "fingerprint": BY_FUNCTION})
add("custom-type-function-error", "custom", {**java_order("1b2c3d4e", 3, "b"),
                                             "fingerprint": BY_FUNCTION})
add("custom-type-function-fatal", "custom", {**java_order("8a3f2c1d", 0, "a"), "level": "fatal",
                                             "fingerprint": BY_FUNCTION})
BY_MODULE = ["module", "{{ module }}"]
add("custom-module-ordersvc", "custom", {**java_order("8a3f2c1d", 0, "a"),
                                         "fingerprint": BY_MODULE})
add("custom-module-ordersvc", "custom", {**java_order("8a3f2c1d", 0, "a", "invoice"),
                                         "fingerprint": BY_MODULE})


def main() -> None:
    with OUT.open("w", encoding="utf-8") as handle:
        for record in RECORDS:
            handle.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(RECORDS)} events")


if __name__ == "__main__":
    main()
