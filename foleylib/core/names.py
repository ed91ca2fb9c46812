"""Safe file names from untrusted text (video titles, URLs, user file names)."""
from __future__ import annotations

import re
import unicodedata


def safe_name(text: str, max_len: int = 80) -> str:
    """A name that is safe as one path component: ASCII letters, digits, '.', '_' and '-' only."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text).strip("._-")[:max_len]
    return name or "clip"
