"""Locust users for ``labelleak serve``: each posts batches of 16 random samples to /predict, as fast as answered.

Run through ``bench/load_serve.py`` (starts the server on loopback and stops everything by itself); the input
shape comes from the server's ``/info``.
"""

from __future__ import annotations

import io

import numpy as np
from locust import HttpUser, constant, task


class Auditor(HttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        info = self.client.get("/info").json()
        rng = np.random.default_rng()
        lo, hi = info["bounds"]
        x = rng.uniform(lo, hi, (16, *info["input_shape"])).astype(np.float32)
        buf = io.BytesIO()
        np.save(buf, x, allow_pickle=False)
        self.body = buf.getvalue()

    @task
    def predict(self) -> None:
        with self.client.post(
            "/predict", data=self.body, headers={"Content-Type": "application/x-npy"}, catch_response=True
        ) as response:
            if response.status_code != 200 or len(response.json().get("labels", [])) != 16:
                response.failure(f"HTTP {response.status_code}")
