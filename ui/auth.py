"""Who is using this browser session, and what they may do. The rules are in core/auth.py; this reads the settings,
secrets.toml (`[auth]` for OIDC via st.login, `[atlas_users]` for built-in users, `[atlas_roles]` for OIDC users'
roles) and the session, and draws the log-in page and the sidebar's user box.

Pages hide what a role may not do, and every callback that writes checks `can(...)` again: a hidden button is not a
permission (a stale page or a crafted message can still trigger its callback)."""
from __future__ import annotations

import time
from typing import Any, Mapping

import streamlit as st

from core import auth, settings
from core import labels as label_ops

_USER_KEY = "_atlas_user"  # built-in log-in: the user's name (no widget has this key, so no browser can set it)
_ERROR_KEY = "_atlas_login_error"
FAILED_LOGIN_DELAY_S = 1.0


def _secret(name: str) -> dict[str, Any]:
    """A section of secrets.toml as a plain dict ({} when absent or when there is no secrets.toml)."""
    try:
        section = st.secrets.get(name)
    except (FileNotFoundError, KeyError):
        return {}
    return _plain(section) if isinstance(section, Mapping) else {}


def _plain(value: Any) -> Any:
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, Mapping) else value


def _users() -> dict[str, Any]:
    return _secret("atlas_users")


def _oidc_configured() -> bool:
    return bool(_secret("auth"))


def mode() -> str:
    """auth.LOCAL, auth.READ_ONLY or auth.LOGIN, from the settings and secrets.toml."""
    return auth.access_mode(settings.get("ATLAS_AUTH"), settings.get("ATLAS_READ_ONLY"), bool(_users()),
                            _oidc_configured())


def _oidc_user() -> str | None:
    if not _oidc_configured() or not st.user.get("is_logged_in", False):
        return None
    return st.user.get("email") or st.user.get("name") or st.user.get("sub")


def current_user() -> str | None:
    """The logged-in user's name (built-in) or email (OIDC); None when nobody is logged in or no log-in is used."""
    if mode() != auth.LOGIN:
        return None
    name = st.session_state.get(_USER_KEY)
    if name is not None and auth.user_role(_users(), name) is not None:
        return name
    return _oidc_user()


def current_role() -> str:
    """viewer, editor or admin. Local single-user mode: admin; read-only mode and nobody logged in: viewer."""
    m = mode()
    if m == auth.LOCAL:
        return "admin"
    if m == auth.READ_ONLY:
        return "viewer"
    name = st.session_state.get(_USER_KEY)
    role = auth.user_role(_users(), name) if name is not None else None
    if role is not None:  # re-read each run: a role changed or a user removed in secrets.toml applies at once
        return role
    oidc = _oidc_user()
    return auth.role_for(oidc, _secret("atlas_roles")) if oidc else "viewer"


def can(action: str) -> bool:
    """Whether the current user may do `action`: "edit" (relabel, accept, confirm, undo) or "admin" (ingest,
    delete points, the connection)."""
    return auth.allows(current_role(), action)


def actor() -> str:
    """The name recorded as `by` in label_history: the logged-in user, else ATLAS_USER, else the login name."""
    return current_user() or settings.get("ATLAS_USER") or label_ops.default_user()


def login_required() -> bool:
    """Whether this session must log in before anything else is drawn."""
    return mode() == auth.LOGIN and current_user() is None


def _try_login() -> None:
    """Callback of the log-in form: checks the password, then forgets it (it stays in no session state)."""
    name = st.session_state.get("login_name", "").strip()
    password = st.session_state.get("login_password", "")
    st.session_state["login_password"] = ""
    try:
        role = auth.check_login(_users(), name, password)
    except auth.AuthConfigError as exc:
        st.session_state[_ERROR_KEY] = str(exc)
        return
    if role is None:
        time.sleep(FAILED_LOGIN_DELAY_S)  # slows guessing; the message does not say which part was wrong
        st.session_state[_ERROR_KEY] = "Wrong user name or password."
        return
    st.session_state[_USER_KEY] = name


def login_page() -> None:
    """The only page while nobody is logged in: an identity provider's button and/or the built-in form."""
    st.title("Log in to Image Atlas")
    if _oidc_configured():
        section = _secret("auth")
        providers = [k for k, v in section.items() if isinstance(v, Mapping)] if "client_id" not in section else []
        for provider in providers or [None]:
            label = f"Log in with {provider}" if provider else "Log in with your identity provider"
            if st.button(label, key=f"login_oidc_{provider or 'default'}", type="primary"):
                st.login(provider)  # None: the settings directly in [auth]
    if _users():
        with st.form("login_form"):
            st.text_input("User name", key="login_name", autocomplete="username")
            st.text_input("Password", key="login_password", type="password", autocomplete="current-password")
            st.form_submit_button("Log in", type="primary", on_click=_try_login)
        error = st.session_state.pop(_ERROR_KEY, None)
        if error:
            st.error(error)


def _logout() -> None:
    st.session_state.pop(_USER_KEY, None)
    for key in [k for k in st.session_state if not str(k).startswith("_")]:
        del st.session_state[key]  # the next user of this browser starts clean (audit report, changes, …)
    if _oidc_user():
        st.logout()


def sidebar_user() -> None:
    """Who is logged in and their role (as text: names are data), with a log-out button; or the mode's note."""
    sb = st.sidebar
    m = mode()
    if m == auth.READ_ONLY:
        sb.caption("Read-only demo: nothing can be changed.")
        return
    if m == auth.LOCAL:
        sb.caption("Local single-user mode (no log-in): full access.")
        return
    user = current_user()
    if user is None:
        return
    sb.text(f"{user} · {current_role()}")
    if sb.button("Log out", key="logout"):
        _logout()
        st.rerun()
