"""Recursion: direct and mutual, as deep as the interpreter allows."""


def walk(node: int) -> int:
    return walk(node + 1) + 1


def walk_even(node: int) -> int:
    return walk_odd(node + 1)


def walk_odd(node: int) -> int:
    return walk_even(node + 1)
