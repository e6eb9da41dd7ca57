"""Engine, sessions, the declarative base, tenant scoping and migrations."""

from siyu.db.base import Base, TenantOwned, utcnow
from siyu.db.database import Database

__all__ = ["Base", "Database", "TenantOwned", "utcnow"]
