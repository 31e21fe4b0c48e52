"""Apicurio Registry 3 (Quarkus fast-jar) with its storage in PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from lambdapipe.errors import Problem
from lambdapipe.runtime.services.base import Service, http_ok, java_binary, jvm_options


class ApicurioRegistry(Service):
    name = "apicurio"
    depends_on = ("postgres",)

    @property
    def ports(self) -> list[int]:
        return [self.settings.registry.port]

    def _runner(self) -> Path:
        jars = sorted(
            (self.settings.lib_dir / "apicurio").glob("apicurio-registry-app-*-runner.jar")
        )
        if not jars:
            raise Problem("Apicurio Registry is not installed", hint="run `make setup`")
        return jars[-1]

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [
            java_binary(),
            *jvm_options(self.settings.registry.heap),
            "-jar",
            str(self._runner()),
        ]

    def env(self) -> dict[str, str]:
        r, pg = self.settings.registry, self.settings.postgres
        return {
            "QUARKUS_HTTP_HOST": r.host,
            "QUARKUS_HTTP_PORT": str(r.port),
            "QUARKUS_PROFILE": "prod",
            "APICURIO_STORAGE_KIND": "sql",
            "APICURIO_STORAGE_SQL_KIND": "postgresql",
            "APICURIO_DATASOURCE_URL": (
                f"jdbc:postgresql://{pg.host}:{pg.port}/{pg.registry_database}"
            ),
            "APICURIO_DATASOURCE_USERNAME": pg.registry_user,
            "APICURIO_DATASOURCE_PASSWORD": pg.registry_password.get_secret_value(),
            "APICURIO_CCOMPAT_LEGACY_ID_MODE_ENABLED": "true",
        }

    def ready(self) -> bool:
        return http_ok(f"{self.settings.registry.ccompat}/subjects")
