"""dingpush.alerts: a complete sorted __all__, and Jinja2 loaded only when templates compile."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import dingpush.alerts


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(dingpush.alerts).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("dingpush.alerts")
    }
    assert dingpush.alerts.__all__ == sorted(
        dingpush.alerts.__all__, key=lambda n: (not n.isupper(), n)
    )
    assert public <= set(dingpush.alerts.__all__)


def loaded_after(code: str) -> set[str]:
    script = textwrap.dedent(
        f"""
        import sys
        {code}
        print(",".join(sorted(m for m in sys.modules
                              if m.split(".")[0] in ("jinja2", "markupsafe", "yaml")
                              or m in ("dingpush.alerts", "dingpush.logging"))))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(filter(None, out.stdout.strip().split(",")))


def test_import_dingpush_loads_neither_alerts_nor_the_logging_handler() -> None:
    assert loaded_after("import dingpush") == set()


def test_routing_and_payloads_need_no_template_engine() -> None:
    loaded = loaded_after(
        "from dingpush.alerts import parse_alertmanager, sample, select_routes, Route\n"
        "        payload = parse_alertmanager(sample('alertmanager-firing')[1])\n"
        "        select_routes(Route(targets=['x']), payload.alerts[0].labels)"
    )
    assert loaded == {"dingpush.alerts"}


def test_templates_load_jinja2_when_compiled() -> None:
    loaded = loaded_after("from dingpush.alerts import Templates\n        Templates()")
    assert {"jinja2", "markupsafe"} <= loaded
