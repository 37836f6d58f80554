"""Show connection URLs without their secrets: ``mask_url`` before any URL is printed or logged."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

# Query parameters that carry credentials (presigned links, DSN options).
_SECRET_PARAMS = {"password", "passwd", "pwd", "secret", "token", "sslpassword", "x-amz-signature",
                  "x-amz-credential", "x-amz-security-token", "signature", "sig", "access_token", "api_key",
                  "apikey", "key"}
_BARE_USERINFO = re.compile(r"(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")


def mask_url(url: object) -> str:
    """``url`` with its password (``user:***@host``) and credential query values shown as ``***``.

    Works on SQLAlchemy URLs (``postgresql+psycopg://user:pw@host/db``), S3 endpoints and
    presigned links; text that is not a URL is returned with any ``scheme://user:pw@`` masked.
    """
    text = str(url)
    if "://" not in text:                   # 'user:pw@host' with no scheme: whatever is before the @ goes
        return _BARE_USERINFO.sub(lambda m: f"{m['user']}:***@", text)
    try:
        parts = urlsplit(text)
    except ValueError:
        return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*/")
    if (netloc, query) == (parts.netloc, parts.query):
        return text
    out = f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else f"{netloc}{parts.path}"
    return out + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
