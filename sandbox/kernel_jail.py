"""Kernels in Linux namespaces, for machines without Docker: not built yet."""

from __future__ import annotations


def jail_unavailable_reason() -> str | None:
    return "kernels in local namespaces are not implemented yet"


def leaked_jails() -> list[str]:
    return []
