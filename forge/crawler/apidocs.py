"""API signatures out of documentation pages: Sphinx (``dl.py.function`` > ``dt.sig`` with
``em.sig-param``) and pydoc (``<dl><dt><a name="Class-meth"><strong>meth</strong></a>(args)``).

``ApiDocCollector`` is an event sink driven by ``forge.crawler.extract``'s single parser pass; it
yields one plain dict per documented callable (functions, methods, class constructors):
``{"qualname", "kind", "module", "params": [...], "summary", "description", "param_docs", "style"}``.
Turning those into ``raw.api_operations`` rows lives in ``forge.sources.webdocs.signature_rows``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

#: Sphinx object types we turn into API rows (data, attributes and exceptions are not calls).
CALLABLE_KINDS = ("function", "method", "classmethod", "staticmethod", "class", "decorator")
_FIELD_DOC = re.compile(r"^\s*\**(\w+)\s*(?:\(([^)]*)\))?\s*[–—:-]+\s*(.+)$", re.S)
_WS = re.compile(r"\s+")
#: Tags whose start can change the collector's state (anything else is skipped unparsed).
_SINK_TAGS = frozenset({"dl", "dt", "dd", "em", "span", "code", "a", "p", "li", "title", "section", "div"})


def _clean(text: str) -> str:
    return _WS.sub(" ", text).replace("¶", "").strip()


def parse_param(text: str, optional: bool = False) -> dict[str, Any] | None:
    """One parameter from its signature text (``a``, ``a: int = 1``, ``*args``, ``**kw``); None for
    the bare ``*`` and ``/`` markers."""
    text = _clean(text).strip("[], ")
    if text in ("*", "/", "", "...", "\\*"):
        return None
    kind = "positional_or_keyword"
    if text.startswith("**"):
        kind, text = "var_keyword", text[2:]
    elif text.startswith("*"):
        kind, text = "var_positional", text[1:]
    name, default, annotation = text, None, None
    if "=" in name:
        name, default = (s.strip() for s in name.split("=", 1))
    if ":" in name:
        name, annotation = (s.strip() for s in name.split(":", 1))
    if not name.isidentifier():
        return None
    return {"name": name, "annotation": annotation, "default": default, "kind": kind, "optional": optional}


def parse_argspec(argspec: str) -> list[dict[str, Any]]:
    """Parameters of a pydoc-style ``(a, b=1, *args, c: int = 2, **kw)`` text (``-> ret`` allowed).

    Uses ``ast`` when the text is valid Python, else splits on top-level commas.
    """
    argspec = argspec.strip()
    try:
        fn = ast.parse(f"def _f{argspec}: pass").body[0]
    except SyntaxError:
        inner = argspec[1 : argspec.rfind(")")] if ")" in argspec else argspec[1:]
        parts, depth, cur = [], 0, []
        for ch in inner:
            depth += ch in "([{"
            depth -= ch in ")]}"
            if ch == "," and depth == 0:
                parts.append("".join(cur))
                cur = []
            else:
                cur.append(ch)
        parts.append("".join(cur))
        return [p for p in (parse_param(x) for x in parts) if p is not None]
    assert isinstance(fn, ast.FunctionDef)
    a = fn.args
    out: list[dict[str, Any]] = []

    def add(arg: ast.arg, default: ast.expr | None, kind: str) -> None:
        out.append(
            {
                "name": arg.arg,
                "annotation": ast.unparse(arg.annotation) if arg.annotation else None,
                "default": ast.unparse(default) if default is not None else None,
                "kind": kind,
                "optional": False,
            }
        )

    positional = [*a.posonlyargs, *a.args]
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    for i, (arg, d) in enumerate(zip(positional, defaults, strict=True)):
        add(arg, d, "positional_only" if i < len(a.posonlyargs) else "positional_or_keyword")
    if a.vararg:
        add(a.vararg, None, "var_positional")
    for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        add(arg, d, "keyword_only")
    if a.kwarg:
        add(a.kwarg, None, "var_keyword")
    return out


@dataclass
class _Frame:
    kind: str
    style: str  # sphinx | pydoc
    qualname: str = ""
    phase: str = "await_sig"  # await_sig | sig | after_sig | desc | done
    names: list[str] = field(default_factory=list)
    sig_text: list[str] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    param_buf: list[str] | None = None
    optional: bool = False
    kw_only: bool = False
    desc: list[str] = field(default_factory=list)
    summary: list[str] | None = None
    summary_done: bool = False
    field_name: list[str] | None = None
    current_field: str = ""
    li: list[str] | None = None
    param_docs: dict[str, str] = field(default_factory=dict)
    anchor: str = ""


class ApiDocCollector:
    """Event sink (``start``/``end``/``data``) collecting API signatures of one page."""

    def __init__(self) -> None:
        self._stack: list[tuple[str, str, _Frame | None]] = []  # (tag, role, frame) of elements that matter
        self._frames: list[_Frame] = []
        self._done: list[dict[str, Any]] = []
        self.module = ""
        self._title: list[str] | None = None
        self.title = ""

    # -------------------------------------------------------------- events
    def start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SINK_TAGS or (not attrs and not self._frames and tag not in ("dt", "title")):
            return
        a = dict(attrs)
        ident = a.get("id") or ""
        if ident.startswith("module-"):
            self.module = ident[7:]
        if tag == "title":
            self._title = []
            return
        frame = self._frames[-1] if self._frames else None
        classes = (a.get("class") or "").split()
        role = ""
        if tag == "dl":
            kind = next((k for k in CALLABLE_KINDS if k in classes), None)
            if kind and ("py" in classes or len(classes) == 1):
                self._frames.append(_Frame(kind, "sphinx"))
                role = "pydl"
            elif frame and frame.phase == "desc" and "field-list" in classes:
                role = "fielddl"
            else:
                role = "dl"  # closes whatever it holds that was left unclosed (pydoc omits </dt>)
        elif tag == "dt":
            if frame and frame.style == "pydoc" and frame.phase == "sig":
                self.end("dt")  # pydoc's data entries leave <dt> open
                frame = self._frames[-1] if self._frames else None
            if frame and frame.phase == "await_sig" and frame.style == "sphinx":
                frame.phase, frame.qualname, role = "sig", ident, "sigdt"
            elif frame and frame.phase == "desc" and self._inside("fielddl"):
                frame.field_name, role = [], "fielddt"
            elif not frame or frame.phase == "desc":
                self._frames.append(_Frame("function", "pydoc", phase="sig"))
                role = "pydt"
        elif frame is None:
            return
        elif tag == "em" and frame.phase == "sig" and frame.style == "sphinx" and "property" not in classes:
            if "sig-param" in classes or not classes:
                frame.param_buf, role = [], "param"
        elif (
            tag in ("span", "code")
            and frame.phase == "sig"
            and ({"sig-name", "sig-prename", "descname", "descclassname"} & set(classes))
        ):
            role = "name"
        elif tag == "a" and frame.phase == "sig" and frame.style == "pydoc" and a.get("name"):
            frame.anchor = a.get("name") or ""
            role = "anchor"
        elif tag == "dd" and frame.phase == "after_sig":
            frame.phase, role = "desc", "desc"
        elif tag == "dd" and frame.phase == "desc" and self._inside("fielddl"):
            role = "fielddd"
        elif tag == "p" and frame.phase == "desc" and frame.summary is None:
            frame.summary, role = [], "summary"
        elif tag == "li" and frame.phase == "desc" and self._inside("fielddd"):
            frame.li, role = [], "li"
        if role:
            self._stack.append((tag, role, self._frames[-1] if self._frames else None))

    def _inside(self, role: str) -> bool:
        for _tag, r, _f in reversed(self._stack):
            if r == role:
                return True
            if r in ("pydl", "desc"):
                return False
        return False

    def end(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            self.title, self._title = _clean("".join(self._title)), None
            if not self.module and self.title.startswith(("Python: module ", "Python: package ")):
                self.module = self.title.split()[-1]
            return
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                for _t, role, fr in reversed(self._stack[i:]):
                    self._close(role, fr)
                del self._stack[i:]
                return

    def _pop_to(self, frame: _Frame, emit: bool = True) -> None:
        """Pop frames down to and including ``frame`` (inner ones left open by bad HTML too)."""
        if not any(f is frame for f in self._frames):
            return
        while self._frames:
            top = self._frames.pop()
            if emit and top.phase in ("after_sig", "desc"):
                self._emit(top)
            if top is frame:
                return

    def _close(self, role: str, frame: _Frame | None) -> None:
        if frame is None:
            return
        if role == "param" and frame.param_buf is not None:
            raw = _clean("".join(frame.param_buf))
            p = parse_param(raw, frame.optional)
            if raw == "*":
                frame.kw_only = True
            elif raw == "/":
                for q in frame.params:
                    q["kind"] = "positional_only" if q["kind"] == "positional_or_keyword" else q["kind"]
            elif p is not None:
                if frame.kw_only and p["kind"] == "positional_or_keyword":
                    p["kind"] = "keyword_only"
                frame.params.append(p)
            frame.param_buf = None
        elif role in ("sigdt", "pydt"):
            frame.phase = "after_sig"
            if role == "pydt" and not self._finish_pydoc(frame):
                self._pop_to(frame, emit=False)
        elif role == "summary":
            frame.summary_done = True
        elif role == "fielddt" and frame.field_name is not None:
            frame.current_field, frame.field_name = _clean("".join(frame.field_name)).rstrip(":"), None
        elif role == "li" and frame.li is not None:
            m = _FIELD_DOC.match(_clean("".join(frame.li)))
            if m and frame.current_field.lower().startswith(("parameter", "arg", "keyword")):
                frame.param_docs[m.group(1)] = m.group(3).strip()
            frame.li = None
        elif role in ("desc", "pydl"):
            self._pop_to(frame)

    def data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
            return
        if not self._frames:
            return
        frame = self._frames[-1]
        if frame.phase == "sig":
            if frame.param_buf is not None:
                frame.param_buf.append(data)
            elif self._stack and self._stack[-1][1] in ("name", "anchor") and self._stack[-1][2] is frame:
                frame.names.append(data)
            else:
                frame.sig_text.append(data)
                if "[" in data:
                    frame.optional = True
        elif frame.phase == "desc":
            frame.desc.append(data)
            if frame.summary is not None and not frame.summary_done:
                frame.summary.append(data)
            if frame.li is not None:
                frame.li.append(data)
            if frame.field_name is not None:
                frame.field_name.append(data)

    # -------------------------------------------------------------- results
    def _finish_pydoc(self, frame: _Frame) -> bool:
        """Fill a pydoc frame from its anchor and argspec; False if the dt is not a signature."""
        text = "".join(frame.sig_text).strip()
        cls, sep, name = frame.anchor.partition("-")
        if not sep or not name.isidentifier() or not text.startswith("("):
            return False
        depth, end = 0, -1
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                end = i
                break
        frame.params = parse_argspec(text[: end + 1])
        frame.kind = "method" if cls else "function"
        frame.qualname = ".".join(x for x in (self.module, cls, name) if x)
        return True

    def _emit(self, frame: _Frame) -> None:
        if frame.phase == "done":
            return
        frame.phase = "done"
        qualname = frame.qualname or _clean("".join(frame.names)).rstrip("(")
        if not qualname or not re.fullmatch(r"[A-Za-z_][\w.]*", qualname):
            return
        if qualname.rsplit(".", 1)[-1].startswith("_"):  # private and dunder names are not public API
            return
        params = frame.params
        if frame.kind in ("method", "classmethod") and params and params[0]["name"] in ("self", "cls"):
            params = params[1:]
        self._done.append(
            {
                "qualname": qualname,
                "kind": frame.kind,
                "module": self.module or qualname.rpartition(".")[0],
                "params": params,
                "summary": _clean("".join(frame.summary or [])) or None,
                "description": _clean("".join(frame.desc))[:4000] or None,
                "param_docs": frame.param_docs,
                "style": frame.style,
            }
        )

    def result(self) -> list[dict[str, Any]]:
        while self._frames:  # a page cut short: emit what was complete enough
            frame = self._frames.pop()
            if frame.phase in ("after_sig", "desc"):
                self._emit(frame)
        return self._done
