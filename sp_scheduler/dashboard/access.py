"""Who may act through the dashboard: actions are off unless turned on, and then need the token.

The API takes the token as `Authorization: Bearer <token>`. The pages take it once in a login form,
which sets a session cookie holding the operator's name and an HMAC of it keyed by the token (so the
cookie is worthless without the token and ends when the token changes); each action form carries a
CSRF token, an HMAC of the same name under another label, which another site cannot read or forge.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field

from starlette.requests import Request

from sp_scheduler.errors import SchedulerError, UsageError

SESSION_COOKIE = "sp_web_session"
MAX_ACTOR_LENGTH = 100


class ActionsDisabled(SchedulerError):
    """The dashboard is read-only (answered with 403)."""


class NotAuthorized(SchedulerError):
    """No valid token, session or CSRF token came with an action (answered with 401)."""


@dataclass(frozen=True)
class Access:
    """Whether actions are on, and the token they need (never shown, never logged)."""

    actions: bool = False
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.actions and not self.token:
            raise UsageError("actions (--actions or SP_WEB_ACTIONS=1) need a token: set SP_WEB_TOKEN")

    def _sign(self, label: str, value: str) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), f"{label}:{value}".encode(), hashlib.sha256).hexdigest()

    def require_actions(self) -> None:
        if not self.actions:
            raise ActionsDisabled("the dashboard is read-only: start it with --actions (or SP_WEB_ACTIONS=1)")

    def bearer_actor(self, request: Request, fallback: str) -> str:
        """The actor of an API action whose bearer token is right; `NotAuthorized` otherwise."""
        self.require_actions()
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        assert self.token is not None
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise NotAuthorized("this action needs the header `Authorization: Bearer <SP_WEB_TOKEN>`")
        name = request.headers.get("x-actor", "").strip()[:MAX_ACTOR_LENGTH] or fallback
        return f"{name} via web"

    def login(self, given_token: str, actor: str) -> str:
        """The session cookie's value for `actor`, if `given_token` is the token; `NotAuthorized` otherwise."""
        self.require_actions()
        assert self.token is not None
        if not hmac.compare_digest(given_token.encode(), self.token.encode()):
            raise NotAuthorized("wrong token")
        name = actor.strip()[:MAX_ACTOR_LENGTH]
        if not name:
            raise UsageError("name: say who you are (it is recorded with every action)")
        encoded = base64.urlsafe_b64encode(name.encode()).decode()
        return f"{encoded}.{self._sign('session', name)}"

    def session_actor(self, request: Request) -> str | None:
        """The operator a valid session cookie names, or None (no cookie, a forged one, actions off)."""
        if not self.actions:
            return None
        encoded, _, signature = request.cookies.get(SESSION_COOKIE, "").partition(".")
        try:
            name = base64.urlsafe_b64decode(encoded.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not name or not hmac.compare_digest(signature, self._sign("session", name)):
            return None
        return name

    def csrf_token(self, actor: str) -> str:
        """The form token of `actor`'s session."""
        return self._sign("csrf", actor)

    def form_actor(self, request: Request, csrf: str) -> str:
        """The actor of a page action: a valid session and its CSRF token; `NotAuthorized` otherwise."""
        self.require_actions()
        actor = self.session_actor(request)
        if actor is None:
            raise NotAuthorized("log in with the dashboard's token to act")
        if not hmac.compare_digest(csrf, self.csrf_token(actor)):
            raise NotAuthorized("the form's CSRF token does not match this session: reload the page")
        return f"{actor} via web"
