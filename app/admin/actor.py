"""Who is acting: a console user, an admin API token, or the command line. Roles: admin (reads and changes)
and viewer (reads only)."""

from __future__ import annotations

from dataclasses import dataclass

from alertbridge.admin.errors import Forbidden
from alertbridge.models import Role


@dataclass(frozen=True)
class Actor:
    kind: str  # user | token | cli
    name: str
    role: str  # a models.Role value

    @property
    def label(self) -> str:
        """How the actor is named in versions, replays and the audit."""
        if self.kind == "token":
            return f"token:{self.name}"
        return self.name

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden(f"{self.label} has the viewer role: it can read everything and change nothing")


CLI = Actor("cli", "cli", Role.ADMIN)
