"""The checkpoint page: paste or scan a health code and check it in the browser, offline, with
the public keys embedded in the page (and refreshed from ``/api/v1/codes/keys`` when online).

Public: it shows only what the code itself carries (colour, expiry, a masked person token); the
signature check needs no secret. The page's script is ``static/checkpoint.js``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core.i18n import t
from bastion.healthcode import keys
from bastion.web.common import WebPrincipal, render

router = APIRouter(include_in_schema=False)

#: Messages the script shows, rendered into the page in the caller's language.
SCRIPT_TEXTS = (
    "code.verdict_valid",
    "code.verdict_malformed",
    "code.verdict_unknown_key",
    "code.verdict_retired_key",
    "code.verdict_bad_signature",
    "code.verdict_expired",
    "code.colour_green",
    "code.colour_yellow",
    "code.colour_red",
    "code.expires_label",
    "code.person_label",
    "code.key_label",
    "code.no_webcrypto",
    "code.keys_online",
    "code.keys_offline",
    "code.keys_none",
    "code.checking",
)


@router.get("/checkpoint", response_class=HTMLResponse)
def checkpoint_page(request: Request, session: SessionDep, principal: WebPrincipal) -> Response:
    lang = request_language(request)
    data = {
        "jwks": keys.jwks(db_session=session),
        "texts": {key: t(key, lang) for key in SCRIPT_TEXTS},
        "keys_url": "/api/v1/codes/keys",
    }
    return render(request, "checkpoint.html", {"data": data}, principal=principal)
