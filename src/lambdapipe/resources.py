"""The one map from the profile to the backends lambdapipe runs on.

A profile names a deployment: `local` (everything on this machine, started by `lambdapipe up`)
or `cluster` (external services only). Each deployment picks a backend for every resource, and
each backend is one function behind an interface (the way pyiceberg maps catalog types to
classes). Business code asks `Resources` for a `ServingStore`, an S3 client, a Spark master:
it never looks at the profile or at a concrete class.

A setting may override a profile's choice for one resource (e.g. the local profile against a
real ClickHouse server: `LAMBDAPIPE_SERVING__BACKEND=server`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from lambdapipe.settings import Profile, Settings, StoreBackend

if TYPE_CHECKING:
    from lambdapipe.serving.store import ServingStore


@dataclass(frozen=True)
class Deployment:
    """What a profile runs on. Fields for the batch side are added as its backends land."""

    # the serving store: ClickHouse embedded in `lambdapipe serve` (chdb), or a server
    store: StoreBackend
    # the Spark master when settings name none
    spark_master: str
    # whether `lambdapipe up`/`down` start and stop local processes for this profile
    manages_local_stack: bool


DEPLOYMENTS: Final[dict[Profile, Deployment]] = {
    "local": Deployment(store="embedded", spark_master="local[*]", manages_local_stack=True),
    "cluster": Deployment(store="server", spark_master="", manages_local_stack=False),
}


def _embedded_store(settings: Settings, owner: bool) -> ServingStore:
    # chdb allows one process per data directory: the serve process owns it, and every other
    # process reaches it through that process's ClickHouse-style HTTP endpoint
    if owner:
        from lambdapipe.serving.embedded import EmbeddedStore

        return EmbeddedStore(serving_data_dir(settings))
    from lambdapipe.serving.http import HttpStore

    return HttpStore(settings.serving.store_url, timeout_s=settings.serving.query_timeout_s)


def _server_store(settings: Settings, owner: bool) -> ServingStore:
    from lambdapipe.serving.http import HttpStore

    serving = settings.serving
    return HttpStore(
        serving.server_url,
        serving.server_user,
        serving.server_password,
        serving.database,
        serving.query_timeout_s,
    )


STORES: Final[dict[StoreBackend, Callable[[Settings, bool], ServingStore]]] = {
    "embedded": _embedded_store,
    "server": _server_store,
}


def serving_data_dir(settings: Settings) -> Path:
    """The chdb data directory of the embedded store."""
    return (settings.serving.data_dir or settings.data_dir / "serving").resolve()


class Resources:
    """The backends of one settings object, chosen by its profile."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.deployment = DEPLOYMENTS[settings.profile]

    @property
    def store_backend(self) -> StoreBackend:
        return self.settings.serving.backend or self.deployment.store

    def store(self, *, owner: bool = False) -> ServingStore:
        """The serving store for this process.

        `owner=True` (only `lambdapipe serve`) opens the engine itself when it is embedded;
        everyone else talks HTTP, to the ClickHouse server or to the serve process.
        """
        return STORES[self.store_backend](self.settings, owner)

    @property
    def serves_store_endpoint(self) -> bool:
        """Whether `lambdapipe serve` exposes the store over HTTP (it owns an embedded engine)."""
        return self.store_backend == "embedded"

    @property
    def store_location(self) -> str:
        """Where the store's data lives, for people: a directory or a server URL."""
        if self.store_backend == "embedded":
            return str(serving_data_dir(self.settings))
        return self.settings.serving.server_url

    @property
    def spark_master(self) -> str:
        from lambdapipe.errors import Problem

        master = self.settings.speed.master or self.deployment.spark_master
        if not master:
            raise Problem(
                f"profile {self.settings.profile!r} has no Spark master",
                hint="set LAMBDAPIPE_SPEED__MASTER (e.g. k8s://https://<api-server>:6443)",
            )
        return master

    @property
    def manages_local_stack(self) -> bool:
        return self.deployment.manages_local_stack

    def s3_client(self) -> Any:
        """A boto3 S3 client for the object store (path-style: S3Proxy and most S3 stores)."""
        import boto3
        from botocore.config import Config

        s3 = self.settings.s3
        return boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            region_name=s3.region,
            aws_access_key_id=s3.access_key_id,
            aws_secret_access_key=s3.secret_access_key.get_secret_value(),
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3},
                # S3-compatible stores (S3Proxy among them) reject the newer checksum headers
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
