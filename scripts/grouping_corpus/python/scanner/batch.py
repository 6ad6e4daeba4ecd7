"""Batches that fail as exception groups (Python 3.11)."""

from scanner import ocr


def read_all(document: str, pages: list[int]) -> None:
    errors: list[Exception] = []
    for number in pages:
        try:
            ocr.read_page(document, number)
        except ValueError as error:
            errors.append(error)
    raise ExceptionGroup(f"{len(errors)} pages of {document} failed", errors)


def read_and_index(document: str, pages: list[int], keys: list[str]) -> None:
    errors: list[Exception] = []
    for item in [*pages, *keys]:
        try:
            if isinstance(item, int):
                ocr.read_page(document, item)
            else:
                ocr.lookup({}, item)
        except (ValueError, KeyError) as error:
            errors.append(error)
    raise ExceptionGroup(f"batch {document} failed", errors)
