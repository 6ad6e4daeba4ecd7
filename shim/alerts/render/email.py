"""E-mail: a plain-text body with an HTML alternative, one message to every ``to=``.

The subject is one line (a header cannot hold a line break from a title); the HTML part escapes
every piece of user text.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from shim.alerts import text
from shim.alerts.channels import Channel
from shim.alerts.summary import Summary

SUBJECT_LIMIT = 200
DETAIL_LIMIT = 20_000


def render(channel: Channel, summary: Summary) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = text.cut(text.one_line(f"[shim] {summary.headline}: {summary.title}"),
                                  SUBJECT_LIMIT)
    message["From"] = str(channel.options["sender"])
    recipients = channel.options["recipients"]
    assert isinstance(recipients, tuple)
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="shim.local")
    message.set_content(plain(summary))
    message.add_alternative(html(summary), subtype="html")
    return message


def plain(summary: Summary) -> str:
    lines = [summary.headline, "", summary.title, ""]
    lines += [f"{label}: {value}" for label, value in summary.facts]
    if summary.detail:
        lines += ["", text.cut(summary.detail, DETAIL_LIMIT)]
    lines += [f"- {e.headline}: {text.one_line(e.title)}" + (f"\n  {e.link}" if e.link else "")
              for e in summary.entries]
    if summary.link:
        lines += ["", summary.link]
    return "\n".join(lines) + "\n"


def html(summary: Summary) -> str:
    esc = text.email_html
    parts = [f"<h2>{esc(summary.headline)}</h2>", f"<p>{esc(summary.title)}</p>"]
    if summary.facts:
        rows = "".join(f"<tr><th align='left'>{esc(label)}</th><td>{esc(value)}</td></tr>"
                       for label, value in summary.facts)
        parts.append(f"<table>{rows}</table>")
    if summary.detail:
        parts.append(f"<pre>{esc(text.cut(summary.detail, DETAIL_LIMIT))}</pre>")
    if summary.entries:
        items = "".join(
            f"<li>{_linked(esc(e.headline), e.link)}: {esc(text.one_line(e.title))}</li>"
            for e in summary.entries)
        parts.append(f"<ul>{items}</ul>")
    if summary.link:
        parts.append(f"<p>{_linked('Open in shim', summary.link)}</p>")
    return "<html><body>" + "".join(parts) + "</body></html>\n"


def _linked(label: str, link: str | None) -> str:
    return f'<a href="{text.email_html(link)}">{label}</a>' if link else label
