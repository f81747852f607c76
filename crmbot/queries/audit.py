"""The audit log as admins read it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.models import AuditLog


def audit_rows(*, session: Session, limit: int = 20) -> list[AuditLog]:
    return list(
        session.execute(select(AuditLog).order_by(col(AuditLog.id).desc()).limit(limit)).scalars()
    )
