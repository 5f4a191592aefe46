"""Errors that carry an exit code, so the CLI maps them without guessing."""

from __future__ import annotations


class CurateError(Exception):
    """Base of every expected error; `exit_code` is what the CLI returns."""

    exit_code = 1


class BadInputError(CurateError):
    """The user's input (a path, a format, a record, a query) cannot be used."""

    exit_code = 3


class QueryRefusedError(BadInputError):
    """User SQL asked for something the sandbox does not allow."""


class QueryTimeoutError(CurateError):
    """User SQL ran past its time limit and was interrupted."""

    exit_code = 5


class WarehouseBusyError(CurateError):
    """Another process holds the warehouse file in a way that excludes us."""

    exit_code = 4


class IntegrityError(CurateError):
    """Stored data does not match what its catalog says (`curate verify`)."""

    exit_code = 6
