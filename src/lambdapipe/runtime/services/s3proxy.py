"""S3Proxy: a real S3 endpoint on localhost, storing objects in the filesystem."""

from __future__ import annotations

from botocore.exceptions import ClientError

from lambdapipe.resources import Resources
from lambdapipe.runtime.services.base import (
    Service,
    classpath,
    http_ok,
    java_binary,
    jvm_options,
    properties,
    write_if_changed,
)


class S3Proxy(Service):
    name = "s3proxy"

    @property
    def ports(self) -> list[int]:
        return [self.settings.s3.port]

    def prepare(self) -> None:
        s3 = self.settings.s3
        (self.data_dir / "buckets").mkdir(parents=True, exist_ok=True)
        write_if_changed(
            self.settings.conf_dir / "s3proxy.properties",
            properties(
                {
                    "s3proxy.endpoint": f"http://{s3.host}:{s3.port}",
                    "s3proxy.authorization": "aws-v2-or-v4",
                    "s3proxy.identity": s3.access_key_id,
                    "s3proxy.credential": s3.secret_access_key.get_secret_value(),
                    "jclouds.provider": "filesystem",
                    "jclouds.filesystem.basedir": self.data_dir / "buckets",
                    "jclouds.region": s3.region,
                    # Iceberg's batch deletes send headers S3Proxy does not know: 501 without this
                    "s3proxy.ignore-unknown-headers": "true",
                }
            ),
            mode=0o600,
        )

    def argv(self) -> list[str]:
        return [
            java_binary(),
            *jvm_options(self.settings.s3.heap),
            "-cp",
            classpath(self.settings.lib_dir / "s3proxy"),
            "org.gaul.s3proxy.Main",
            "--properties",
            str(self.settings.conf_dir / "s3proxy.properties"),
        ]

    def ready(self) -> bool:
        return http_ok(self.settings.s3.endpoint)

    def bootstrap(self) -> None:
        client = Resources(self.settings).s3_client()
        try:
            client.head_bucket(Bucket=self.settings.s3.bucket)
        except ClientError:
            client.create_bucket(Bucket=self.settings.s3.bucket)
