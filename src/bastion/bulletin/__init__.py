"""The daily bulletin (疫情通报): a day's figures computed from the record, rendered in the
register of an official press release (zh-CN) and in English, published frozen and corrected
only by a new, audited revision. See docs/bulletin.md."""

from bastion.bulletin.service import (
    chart,
    correct,
    get,
    latest_day,
    publish,
    render,
    render_latest,
    revisions,
)

__all__ = [
    "chart",
    "correct",
    "get",
    "latest_day",
    "publish",
    "render",
    "render_latest",
    "revisions",
]
