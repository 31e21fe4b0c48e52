"""Prometheus (Debian's binary) scraping every component of the stack."""

from __future__ import annotations

import shutil

import yaml

from lambdapipe.errors import Problem
from lambdapipe.observability.targets import targets_dir
from lambdapipe.runtime.services.base import Service, http_ok, write_if_changed


class Prometheus(Service):
    name = "prometheus"

    @property
    def ports(self) -> list[int]:
        return [self.settings.prometheus.port]

    def config(self) -> dict[str, object]:
        p, k = self.settings.prometheus, self.settings.kafka
        return {
            "global": {"scrape_interval": p.scrape_interval, "evaluation_interval": "15s"},
            "scrape_configs": [
                {"job_name": "prometheus", "static_configs": [{"targets": [f"{p.host}:{p.port}"]}]},
                {
                    "job_name": "kafka",
                    "static_configs": [
                        {
                            "targets": [
                                f"127.0.0.1:{p.kafka_exporter_port + i}" for i in range(k.nodes)
                            ]
                        }
                    ],
                },
                {
                    "job_name": "kafka-connect",
                    "static_configs": [{"targets": [f"127.0.0.1:{p.connect_exporter_port}"]}],
                },
                {
                    "job_name": "lambdapipe",
                    "file_sd_configs": [
                        {
                            "files": [str(targets_dir(self.settings) / "*.json")],
                            "refresh_interval": "5s",
                        }
                    ],
                },
            ],
        }

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # lambdapipe's own processes (generator, speed layer, serving) register here
        targets_dir(self.settings).mkdir(parents=True, exist_ok=True)
        write_if_changed(
            self.settings.conf_dir / "prometheus.yml",
            yaml.safe_dump(self.config(), sort_keys=False),
        )

    def argv(self) -> list[str]:
        binary = shutil.which("prometheus")
        if binary is None:
            raise Problem("Prometheus is not installed", hint="run `make setup`")
        p = self.settings.prometheus
        return [
            binary,
            f"--config.file={self.settings.conf_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=3d",
            f"--web.listen-address={p.host}:{p.port}",
            "--web.enable-lifecycle",
        ]

    def ready(self) -> bool:
        return http_ok(f"{self.settings.prometheus.endpoint}/-/ready")
