"""Who may do what: password checks and role rules (core/auth.py), and the app enforcing them (AppTest): the log-in
page before anything else, action buttons by role on Audit, callbacks that refuse a forced action, Ingest for
admins only, label_history's `by`, and the read-only mode."""
import subprocess
import sys
import time
import tomllib

import pytest
from streamlit.testing.v1 import AppTest

from core import auth
from core.ingest import point_id
from tests.conftest import ROOT
from ui.common import get_store

PASSWORDS = {"vera": "viewer pass", "ed": "editor pass", "ada": "admin pass"}
HASHES = {name: auth.hash_password(pw) for name, pw in PASSWORDS.items()}


def _users(**roles: str) -> dict:
    return {name: {"password_hash": HASHES[name], "role": role} for name, role in roles.items()}


USERS = _users(vera="viewer", ed="editor", ada="admin")
ACTION_SUFFIXES = ("_accept", "_confirm", "_keep", "_delete", "_relabel")


# --- core/auth: pure rules ---------------------------------------------------------------------------------------

def test_password_hash_is_salted_and_verifies_only_the_right_password():
    h = auth.hash_password("correct horse")
    assert h.startswith("$argon2id$") and h != auth.hash_password("correct horse")  # salted: never the same
    assert auth.verify_password("correct horse", h)
    assert not auth.verify_password("correct horsE", h)
    assert not auth.verify_password("correct horse", "not-a-hash")  # a malformed hash is a failure, not a crash
    with pytest.raises(ValueError):
        auth.hash_password("")


def test_check_login_gives_the_role_only_for_the_right_password():
    assert auth.check_login(USERS, "ed", "editor pass") == "editor"
    assert auth.check_login(USERS, "ada", "admin pass") == "admin"
    assert auth.check_login(USERS, "ed", "admin pass") is None  # another user's password
    assert auth.check_login(USERS, "nobody", "editor pass") is None
    assert auth.check_login(USERS, "", "") is None
    assert auth.check_login({"x": {"role": "admin"}}, "x", "") is None  # no hash: nobody can log in as x
    assert auth.check_login(_users(vera="viewer") | {"v2": {"password_hash": HASHES["vera"]}}, "v2",
                            "viewer pass") == "viewer"  # no role given: the least one
    with pytest.raises(auth.AuthConfigError, match="atlas_users.ed.role"):
        auth.check_login(_users(ed="superuser"), "ed", "editor pass")


def test_unknown_user_takes_about_as_long_as_a_wrong_password():
    # a quick "no such user" would tell which names exist
    def timed(name):
        t = time.perf_counter()
        auth.check_login(USERS, name, "guess")
        return time.perf_counter() - t

    known, unknown = min(timed("ed") for _ in range(3)), min(timed("mallory") for _ in range(3))
    assert unknown > 0.3 * known


def test_role_mapping_for_identity_provider_users():
    roles = {"admins": ["Boss@Example.org"], "editors": ["ed@example.org", "boss@example.org"]}
    assert auth.role_for("boss@example.org", roles) == "admin"  # case-insensitive; the higher role wins
    assert auth.role_for("ED@example.org ", roles) == "editor"
    assert auth.role_for("someone@example.org", roles) == "viewer"
    assert auth.role_for(None, roles) == "viewer"
    assert auth.role_for("solo@example.org", {"admins": "solo@example.org"}) == "admin"  # a string, not a list
    assert auth.role_for("x@example.org", {}) == "viewer"


def test_what_each_role_may_do():
    assert [auth.allows(r, "view") for r in auth.ROLES] == [True, True, True]
    assert [auth.allows(r, "edit") for r in auth.ROLES] == [False, True, True]
    assert [auth.allows(r, "admin") for r in auth.ROLES] == [False, False, True]
    assert not auth.allows("root", "view")
    with pytest.raises(ValueError):
        auth.allows("admin", "fly")


def test_access_mode():
    assert auth.access_mode("auto", "off", False, False) == auth.LOCAL  # the quick start: no log-in, admin
    assert auth.access_mode("auto", "off", True, False) == auth.LOGIN
    assert auth.access_mode("auto", "off", False, True) == auth.LOGIN
    assert auth.access_mode("off", "off", True, True) == auth.LOCAL
    assert auth.access_mode("auto", "on", True, True) == auth.READ_ONLY  # read-only wins
    assert auth.access_mode("off", "true", False, False) == auth.READ_ONLY
    with pytest.raises(auth.AuthConfigError, match="ATLAS_AUTH"):
        auth.access_mode("maybe", "off", False, False)
    with pytest.raises(auth.AuthConfigError, match="ATLAS_READ_ONLY"):
        auth.access_mode("auto", "sometimes", False, False)


def test_cli_hash_password_prints_a_table_that_logs_in():
    out = subprocess.run([sys.executable, "-m", "core", "hash-password", "--stdin", "--user", "ann lee", "--role",
                          "editor"], input="s3cret pass\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    users = tomllib.loads(out.stdout)["atlas_users"]
    assert auth.check_login(users, "ann lee", "s3cret pass") == "editor"
    assert auth.check_login(users, "ann lee", "s3cret") is None


# --- the app -----------------------------------------------------------------------------------------------------

def _app(secrets: dict | None = None, timeout: int = 120) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    if secrets:
        at.secrets.update(secrets)
    return at.run()


def _login(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    [b for b in at.button if b.label == "Log in"][0].click().run()
    return at


def _run_audit(at: AppTest) -> AppTest:
    at.switch_page("app_pages/audit.py").run()
    at.radio(key="audit_operating_point").set_value("Fixed threshold").run()
    at.slider(key="audit_threshold").set_value(0.2)  # 39 toy points give soft probabilities
    [b for b in at.button if b.label == "Run audit"][0].click().run()
    assert not at.exception, at.exception
    return at


def _action_buttons(at: AppTest) -> list[str]:
    return [b.key for b in at.button if b.key and (b.key.endswith(ACTION_SUFFIXES) or b.key.startswith(
        ("audit_bulk", "audit_del_", "audit_undo", "audit_accept_unlabeled")))]


def _row(at: AppTest, file: str):
    table = at.session_state["audit_report"][1].table
    return table[table["id"] == point_id(file)].iloc[0]


def test_log_in_required_when_users_are_configured(app_env):
    at = _app({"atlas_users": USERS})
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Log in to Image Atlas"]
    assert not at.sidebar.success and not at.dataframe  # no connection, no page content before log-in
    at.switch_page("app_pages/audit.py").run()  # a link to another page shows the log-in form, not the page
    assert [t.value for t in at.title] == ["Log in to Image Atlas"]
    assert [b.label for b in at.button] == ["Log in"]  # nothing of the Audit page

    _login(at, "ed", "admin pass")
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    assert [t.value for t in at.title] == ["Log in to Image Atlas"]
    assert at.text_input(key="login_password").value == ""  # the password is not kept in the session
    _login(at, "nobody", "admin pass")
    assert [e.value for e in at.error] == ["Wrong user name or password."]  # same message for an unknown name

    _login(at, "ed", "editor pass")
    assert not at.exception, at.exception
    assert [t.value for t in at.main.title] == ["Audit"]  # the page the link named
    assert any("Connected: embedded Qdrant" in s.value for s in at.sidebar.success)
    assert "ed · editor" in [t.value for t in at.sidebar.text]
    at.sidebar.button(key="logout").click().run()
    assert [t.value for t in at.title] == ["Log in to Image Atlas"]


def test_failed_log_in_waits(app_env):
    from ui import auth as ui_auth

    at = _app({"atlas_users": USERS})
    t = time.perf_counter()
    _login(at, "ed", "wrong")
    assert time.perf_counter() - t >= ui_auth.FAILED_LOGIN_DELAY_S >= 0.5


def test_viewer_sees_the_audit_read_only(colors_env):
    at = _login(_app({"atlas_users": USERS}), "vera", PASSWORDS["vera"])
    _run_audit(at)
    assert at.session_state["audit_report"][1].suspects("label").shape[0] >= 1  # there is something to act on
    at.session_state["audit_table_0"] = {"selection": {"rows": [0], "columns": []}}  # a selection offers no bulk
    at.run()
    assert not at.exception, at.exception
    assert _action_buttons(at) == []
    assert any("viewer" in i.value and "read-only" in i.value for i in at.info)
    assert "vera · viewer" in [t.value for t in at.sidebar.text]


def test_editor_sees_actions_but_no_delete(colors_env):
    at = _run_audit(_login(_app({"atlas_users": USERS}), "ed", PASSWORDS["ed"]))
    keys = _action_buttons(at)
    assert any(k.endswith("_relabel") for k in keys) and any(k.endswith("_keep") for k in keys)
    assert not any(k.endswith("_delete") or k.startswith("audit_del_") for k in keys)
    admin = _run_audit(_login(_app({"atlas_users": USERS}), "ada", PASSWORDS["ada"]))
    assert any(k.endswith("_delete") for k in _action_buttons(admin))


def test_a_forced_relabel_by_a_viewer_writes_nothing(colors_env):
    # The page was drawn while ed was an editor; then ed is made a viewer (or a crafted message presses the button):
    # the callback itself must refuse.
    at = _run_audit(_login(_app({"atlas_users": USERS}), "ed", PASSWORDS["ed"]))
    dark = _row(at, "blue/dark.png")
    key = f"audit_out_{dark.name}"
    at.selectbox(key=f"{key}_other").set_value("green").run()
    at.secrets["atlas_users"] = _users(vera="viewer", ed="viewer", ada="admin")
    at.button(key=f"{key}_relabel").click().run()
    assert not at.exception, at.exception
    assert any("Not allowed" in e.value for e in at.error), [e.value for e in at.error]
    store = get_store("", "", str(colors_env))
    payload = store.retrieve("colors", [dark.id]).payloads[0]
    assert payload["label"] == "blue" and not payload.get("label_history")
    assert "audit_changes" not in at.session_state or at.session_state["audit_changes"] == []


def test_a_forced_delete_by_an_editor_deletes_nothing(colors_env):
    at = _run_audit(_login(_app({"atlas_users": USERS}), "ada", PASSWORDS["ada"]))
    dark = _row(at, "blue/dark.png")
    at.secrets["atlas_users"] = _users(ada="editor")
    at.button(key=f"audit_out_{dark.name}_delete").click().run()
    assert not at.exception, at.exception
    assert any("admin role" in e.value for e in at.error), [e.value for e in at.error]
    store = get_store("", "", str(colors_env))
    assert len(store.retrieve("colors", [dark.id]).payloads) == 1


def test_an_editors_relabel_records_the_user(colors_env, monkeypatch):
    monkeypatch.setenv("ATLAS_USER", "someone-else")  # the logged-in user wins over the setting
    at = _run_audit(_login(_app({"atlas_users": USERS}), "ed", PASSWORDS["ed"]))
    odd = _row(at, "blue/odd.png")
    at.button(key=f"audit_pt_{odd.name}_accept").click().run()
    assert not at.exception, at.exception
    store = get_store("", "", str(colors_env))
    payload = store.retrieve("colors", [odd.id]).payloads[0]
    assert payload["label"] == "red" and payload["label_history"][-1]["by"] == "ed"
    at.button(key="audit_undo").click().run()
    assert store.retrieve("colors", [odd.id]).payloads[0]["label_history"][-1]["by"] == "ed"


@pytest.mark.parametrize("user", ["vera", "ed"])
def test_ingest_is_for_admins_only(app_env, user):
    at = _login(_app({"atlas_users": USERS}), user, PASSWORDS[user])
    at.switch_page("app_pages/ingest.py").run()
    assert not at.exception, at.exception
    assert any("for admins" in w.value for w in at.warning)
    assert "ingest_folder" not in [t.key for t in at.text_input]


def test_admin_ingest_only_under_the_allowed_roots(app_env, monkeypatch):
    (app_env / "allowed").mkdir()
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", str(app_env / "allowed"))
    at = _login(_app({"atlas_users": USERS}), "ada", PASSWORDS["ada"])
    at.switch_page("app_pages/ingest.py").run()
    at.text_input(key="ingest_folder").set_value(str(app_env / "allowed" / ".." / "fruit"))
    at.text_input(key="ingest_collection").set_value("escaped")
    [b for b in at.button if b.label == "Ingest"][0].click().run()
    assert not at.exception, at.exception
    assert any("outside the allowed folders" in e.value for e in at.error), [e.value for e in at.error]
    assert "escaped" not in [c.name for c in get_store("", "", str(app_env / "qdrant")).list_collections()]


def test_read_only_mode_needs_no_log_in_and_changes_nothing(colors_env, monkeypatch):
    monkeypatch.setenv("ATLAS_READ_ONLY", "on")
    at = _run_audit(_app({"atlas_users": USERS}))  # users configured, yet no log-in page
    assert _action_buttons(at) == []
    assert any("Read-only deployment" in i.value for i in at.info)
    at.switch_page("app_pages/ingest.py").run()
    assert any("for admins" in w.value for w in at.warning)


def test_a_page_drawn_before_read_only_cannot_write_after(colors_env, monkeypatch):
    at = _run_audit(_app())  # local single-user mode: admin, as before
    dark = _row(at, "blue/dark.png")
    key = f"audit_out_{dark.name}"
    at.selectbox(key=f"{key}_other").set_value("green").run()
    monkeypatch.setenv("ATLAS_READ_ONLY", "on")
    at.button(key=f"{key}_relabel").click().run()
    assert any("Not allowed" in e.value for e in at.error)
    assert get_store("", "", str(colors_env)).retrieve("colors", [dark.id]).payloads[0]["label"] == "blue"


def test_identity_provider_users_get_their_role_from_the_mapping(app_env):
    oidc = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                     "client_id": "id", "client_secret": "secret",
                     "server_metadata_url": "https://idp.example.org/.well-known/openid-configuration"},
            "atlas_roles": {"editors": ["Ed@Example.org"]}}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.secrets.update(oidc)
    at.user = {"is_logged_in": False}
    at.run()
    assert [t.value for t in at.title] == ["Log in to Image Atlas"]
    assert [b.label for b in at.button] == ["Log in with your identity provider"]
    at.user = {"is_logged_in": True, "email": "ed@example.org", "name": "Ed"}
    at.run()
    assert not at.exception, at.exception
    assert "ed@example.org · editor" in [t.value for t in at.sidebar.text]
    at.switch_page("app_pages/ingest.py").run()
    assert any("for admins" in w.value for w in at.warning)
