"""Checks of HAR documents by consumers other than our own code.

- `validate`: the HAR 1.2 JSON schema of the npm ``har-schema`` package (2.0.0,
  ISC licence, vendored in ``tests/data/har-schema/``), with format checks on (its
  ``serverIPAddress`` is a ``oneOf`` of the ipv4 and ipv6 formats, which only format
  checking tells apart), plus the spec's rules the schema leaves out (its ``min``
  is not a JSON-schema keyword): ``send``/``wait``/``receive`` non-negative, other
  timings ``-1`` or more, ``time`` the sum of the timings, ``connect`` including
  ``ssl``.
- `haralyzer_entries`: the entries as the haralyzer library reads them back.
- `mitmdump`: mitmproxy's HAR import, where ``mitmdump`` is installed (not part of
  the test extra: see docs/export.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent / "data" / "har-schema"


@cache
def _validator() -> Any:
    import jsonschema
    from referencing import Registry, Resource

    resources = [
        (path.name, Resource.from_contents(json.loads(path.read_text())))
        for path in SCHEMA_DIR.glob("*.json")
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    schema = json.loads((SCHEMA_DIR / "har.json").read_text())
    return jsonschema.Draft6Validator(
        schema, registry=registry, format_checker=jsonschema.FormatChecker()
    )


def validate(document: Any) -> None:
    """Fail with every schema or spec violation of ``document``."""
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator().iter_errors(document)
    ]
    for i, entry in enumerate(document["log"]["entries"]):
        timings = entry["timings"]
        for name in ("send", "wait", "receive"):
            if timings[name] < 0:
                errors.append(f"entries/{i}/timings/{name}: {timings[name]} < 0")
        for name in ("blocked", "dns", "connect", "ssl"):
            if timings.get(name, -1) < -1:
                errors.append(f"entries/{i}/timings/{name}: {timings[name]} < -1")
        total = sum(v for k, v in timings.items() if k != "ssl" and v > 0)
        if abs(entry["time"] - total) > 0.01:
            errors.append(f"entries/{i}/time: {entry['time']} != sum {total}")
        if timings.get("ssl", -1) > timings.get("connect", -1) + 0.001:
            errors.append(f"entries/{i}/timings: ssl > connect ({timings})")
    assert not errors, "\n".join(errors)


def haralyzer_entries(path: Path) -> list[Any]:
    """The entries of the HAR file at ``path`` as haralyzer reads them, by page."""
    from haralyzer import HarParser

    parser = HarParser.from_file(str(path))
    return [entry for page in parser.pages for entry in page.entries]


def mitmdump() -> str | None:
    """The ``mitmdump`` executable (``$HTTPTRACE_MITMDUMP``, next to Python, or on
    the PATH), or None."""
    candidates = [
        os.environ.get("HTTPTRACE_MITMDUMP"),
        str(Path(sys.executable).with_name("mitmdump")),
        shutil.which("mitmdump"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def mitmdump_flows(executable: str, path: Path) -> str:
    """What ``mitmdump -nr FILE.har`` prints (one line per flow it imported)."""
    result = subprocess.run(
        [executable, "-nr", str(path), "--set", "flow_detail=1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
