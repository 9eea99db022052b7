"""Bearer-token authentication with two scopes: ``read`` (look) and ``write`` (ingest, verdicts, models).

The token file has one token per line, its scope first::

    # who: the dashboard of the control room
    read  3f9a1c...e2
    write 8b77d0...41

Tokens are at least 16 characters. Only their SHA-256 digests are kept in memory and compared (in
constant time), and no message — errors about the file included — ever repeats a token.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from vigil.errors import InvalidInputError

__all__ = ["MIN_TOKEN_CHARS", "SCOPES", "TokenAuth"]

#: Scopes, weakest first: a write token may also read.
SCOPES: tuple[str, ...] = ("read", "write")
MIN_TOKEN_CHARS = 16


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenAuth:
    """Which scope each token grants.

    Parameters
    ----------
    tokens : dict of str to str
        Token → scope (``"read"`` or ``"write"``).

    Examples
    --------
    >>> auth = TokenAuth({"r" * 16: "read", "w" * 16: "write"})
    >>> auth.allows("r" * 16, "read"), auth.allows("r" * 16, "write"), auth.allows("w" * 16, "read")
    (True, False, True)
    >>> auth.scope_of("nope") is None
    True
    """

    def __init__(self, tokens: dict[str, str]) -> None:
        self._scopes: list[tuple[bytes, str]] = []
        for token, scope in tokens.items():
            if scope not in SCOPES:
                msg = f"token scope must be one of {', '.join(SCOPES)}, got {scope!r}"
                raise InvalidInputError(msg)
            if len(token) < MIN_TOKEN_CHARS:
                msg = f"tokens must have at least {MIN_TOKEN_CHARS} characters (a {scope} token has {len(token)})"
                raise InvalidInputError(msg)
            self._scopes.append((_digest(token), scope))

    @classmethod
    def from_file(cls, path: str | Path) -> TokenAuth:
        """Read a token file (see the module docstring); errors name the line, never the token."""
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"cannot read the token file {source}: {exc.strerror}"
            raise InvalidInputError(msg) from exc
        tokens: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            parts = stripped.split()
            if len(parts) != 2 or parts[0] not in SCOPES:
                msg = f"{source}: line {number} must be 'read TOKEN' or 'write TOKEN'"
                raise InvalidInputError(msg)
            scope, token = parts
            if len(token) < MIN_TOKEN_CHARS:
                msg = f"{source}: line {number}: the token is shorter than {MIN_TOKEN_CHARS} characters"
                raise InvalidInputError(msg)
            tokens[token] = scope
        if not tokens:
            msg = f"{source} holds no token"
            raise InvalidInputError(msg)
        return cls(tokens)

    def scope_of(self, token: str) -> str | None:
        """The scope ``token`` grants, or None for an unknown token."""
        digest = _digest(token)
        found = None
        for known, scope in self._scopes:  # compare with every entry: the time does not depend on the match
            if hmac.compare_digest(known, digest):
                found = scope
        return found

    def allows(self, token: str, scope: str) -> bool:
        """Whether ``token`` grants ``scope`` (a write token grants read too)."""
        granted = self.scope_of(token)
        return granted is not None and SCOPES.index(granted) >= SCOPES.index(scope)

    def __repr__(self) -> str:
        return f"TokenAuth({len(self._scopes)} tokens)"
