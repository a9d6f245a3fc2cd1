"""The `cube` connection: a Cube account and its credentials, handed to cube-extract as its
environment (never on its command line, where `ps` would show them)."""

from __future__ import annotations

from cube_extract.airflow._compat import BaseHook


class CubeHook(BaseHook):
    """A Cube account. Host: the account's URL (https://acme.headshed.com); password: the API token,
    or with a login, the password of HTTP Basic authentication."""

    conn_name_attr = "cube_conn_id"
    default_conn_name = "cube_default"
    conn_type = "cube"
    hook_name = "Headshed Cube"

    def __init__(self, cube_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cube_conn_id = cube_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict:
        return {
            "hidden_fields": ["schema", "port", "extra"],
            "relabeling": {"host": "Cube account URL", "login": "User (HTTP Basic; empty for a token)",
                           "password": "API token (or the user's password)"},
            "placeholders": {"host": "https://acme.headshed.com", "password": "the account's API token"},
        }

    def env(self) -> dict[str, str]:
        """CUBE_BASE_URL and CUBE_TOKEN (or CUBE_USERNAME and CUBE_PASSWORD) of the connection."""
        conn = self.get_connection(self.cube_conn_id)
        host = (conn.host or "").strip()
        if not host:
            raise ValueError(f"connection {self.cube_conn_id} has no host; set it to the Cube account's URL")
        if "://" not in host:
            host = f"https://{host}" + (f":{conn.port}" if conn.port else "")
        env = {"CUBE_BASE_URL": host}
        if conn.login:
            env.update(CUBE_USERNAME=conn.login, CUBE_PASSWORD=conn.password or "")
        elif conn.password:
            env["CUBE_TOKEN"] = conn.password
        return env
