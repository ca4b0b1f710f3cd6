"""A griffe extension for the API reference: Sphinx cross-reference roles become links.

scalestudy's docstrings cross-reference in Sphinx's syntax (``:func:`fit_frontier```,
``:class:`~scalestudy.trial.config.Cell```, ``:meth:`title <target>```), which Markdown would show
as it is. Each role becomes an *optional* autorefs link: resolved where the target is rendered in
the reference, plain code where it is not (an external class, an undocumented constant), so a
reference can never fail the build.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|exc|obj|const):`(?P<body>[^`]+)`")
EXPLICIT = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^>]+)>$")


def _link(match: re.Match[str], obj: griffe.Object) -> str:
    body = match["body"].strip()
    explicit = EXPLICIT.match(body)
    if explicit:
        title, target = explicit["title"], explicit["target"]
    else:
        target = body.lstrip("~")
        title = target.rsplit(".", 1)[-1] if body.startswith("~") else target
    target = target.lstrip("~.")
    if not target.startswith("scalestudy"):
        # A name relative to where the docstring is, looked up as Sphinx does: the enclosing class
        # (for a method's or attribute's docstring, and a class's own), then the module.
        # (for a method's or attribute's docstring, and a class's own), the module, the package (a
        # sibling module); a name the module imports links to where it is defined.
        first, _, rest = target.partition(".")
        module = obj.module
        package = module if module.is_package else module.parent
        scopes = [o for o in (obj if obj.is_class else None, obj.parent) if o is not None and o.is_class]
        scopes += [module] + ([package] if package is not None else [])
        found = next((o.members[first] for o in scopes if first in o.members), None)
        if found is None:
            target = f"{module.path}.{target}"
        else:
            path = found.target_path if found.is_alias else found.path
            target = f"{path}.{rest}" if rest else path
    return (f'<autoref identifier="{html.escape(target)}" optional>'
            f"<code>{html.escape(title)}</code></autoref>")


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring's Sphinx roles once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.is_alias or obj.docstring is None or ":`" not in obj.docstring.value:
            return
        obj.docstring.value = ROLE.sub(lambda m: _link(m, obj), obj.docstring.value)
