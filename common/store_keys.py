"""The Redis key names of the state the reference servers keep (what the samplers measure)."""

from __future__ import annotations

KEY_PREFIX = "authbench:"
SESSION_PREFIX = KEY_PREFIX + "sess:"
FAMILY_PREFIX = KEY_PREFIX + "fam:"
REVOKED_FAMILY_PREFIX = KEY_PREFIX + "famrevoked:"
DENIED_PREFIX = KEY_PREFIX + "deny:"
STATE_PREFIXES = (SESSION_PREFIX, FAMILY_PREFIX, DENIED_PREFIX, REVOKED_FAMILY_PREFIX)
