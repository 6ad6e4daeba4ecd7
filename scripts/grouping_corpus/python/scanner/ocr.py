"""Page reading: the failures a scanner has."""


def read_page(document: str, number: int) -> str:
    if number > 2:
        raise ValueError(f"page {number} of {document} is empty")
    return "text"


def parse_header(document: str) -> str:
    raise ValueError(f"bad header in {document}")


def lookup(table: dict[str, int], key: str) -> int:
    return table[key]


class Scanner:
    def __init__(self, dpi: int) -> None:
        self.dpi = dpi

    def scan(self, pages: list[int]) -> list[float]:
        return [self.dpi / page for page in pages]

    def ratios(self, pages: list[int]) -> list[float]:
        return list(map(lambda page: 100 / page, pages))
