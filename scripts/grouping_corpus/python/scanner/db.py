"""A database client that loses its server."""


def query(host: str, sql: str) -> list[str]:
    raise ConnectionError(f"cannot reach {host}:5432 for {sql!r}")


def fetch_with_retry(host: str) -> list[str]:
    try:
        return query(host, "select 1")
    except ConnectionError as error:
        raise RuntimeError(f"query failed after 3 attempts on {host}") from error


def fetch_plain(host: str) -> list[str]:
    raise RuntimeError(f"query failed after 3 attempts on {host}")
