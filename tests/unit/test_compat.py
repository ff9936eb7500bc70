from __future__ import annotations

import types

import eventlet.wsgi

from ryu_pptp_alg import compat, launcher


def test_shim_installs_sentinel_where_eventlet_lacks_it(monkeypatch):
    fake = types.SimpleNamespace()
    monkeypatch.setattr(compat, "eventlet", types.SimpleNamespace(wsgi=fake))
    assert compat.apply() is True
    assert fake.ALREADY_HANDLED == ()
    assert compat.apply() is False  # idempotent


def test_shim_leaves_a_working_eventlet_alone(monkeypatch):
    sentinel = object()
    fake = types.SimpleNamespace(ALREADY_HANDLED=sentinel)
    monkeypatch.setattr(compat, "eventlet", types.SimpleNamespace(wsgi=fake))
    assert compat.apply() is False
    assert fake.ALREADY_HANDLED is sentinel


def test_ryu_wsgi_imports_after_shim():
    compat.apply()
    import ryu.app.wsgi

    assert ryu.app.wsgi._AlreadyHandledResponse._ALREADY_HANDLED is eventlet.wsgi.ALREADY_HANDLED


def test_launcher_adds_the_app_once():
    app = "ryu_pptp_alg.app"
    assert launcher.build_args([]) == ["--app-lists", app]
    assert launcher.build_args(["--verbose", "ryu.app.ofctl_rest"]) == [
        "--app-lists", app, "--verbose", "ryu.app.ofctl_rest"]
    assert launcher.build_args(["ryu.app.ofctl_rest", app]) == ["ryu.app.ofctl_rest", app]
    assert launcher.build_args(["--app-lists", "a,b", "c"]) == ["--app-lists", f"{app},a,b", "c"]
    assert launcher.build_args(["--app-lists=a"]) == [f"--app-lists={app},a"]
    assert launcher.build_args(["--app-lists=a," + app]) == ["--app-lists=a," + app]
