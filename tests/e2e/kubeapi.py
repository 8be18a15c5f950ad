"""A recording Kubernetes API server on loopback, enough for the real kubectl's discovery,
`get`, `delete` and `create`/`apply` of pods and config maps.

Several clusters share one server: each is a path prefix (`http://127.0.0.1:PORT/dev`), so a
kubeconfig's `server:` decides which one a call reaches. Every request is recorded as
(cluster, method, path, body), which is what a test checks: what the approved kubectl did.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESOURCES = {
    "pods": ("Pod", "pod", ["po"]),
    "configmaps": ("ConfigMap", "configmap", ["cm"]),
}


def _resource_list() -> dict:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "v1",
        "resources": [
            {
                "name": plural,
                "singularName": singular,
                "namespaced": True,
                "kind": kind,
                "shortNames": shorts,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
            for plural, (kind, singular, shorts) in RESOURCES.items()
        ],
    }


class KubeAPI:
    """Objects per cluster: {cluster: {(plural, namespace, name): object}}; `requests` log."""

    def __init__(self, clusters: tuple[str, ...] = ("dev", "prod")) -> None:
        self.objects: dict[str, dict[tuple[str, str, str], dict]] = {c: {} for c in clusters}
        self.requests: list[tuple[str, str, str, bytes]] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: object) -> None:
                pass

            def _answer(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                code, answer = api.handle(method, self.path, body)
                self._answer(code, answer)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_DELETE(self) -> None:  # noqa: N802
                self._handle("DELETE")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, cluster: str) -> str:
        return f"http://127.0.0.1:{self.port}/{cluster}"

    def start(self) -> KubeAPI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, cluster: str, plural: str, namespace: str, name: str) -> None:
        kind = RESOURCES[plural][0]
        self.objects[cluster][(plural, namespace, name)] = {
            "kind": kind,
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "uid": f"{cluster}-{name}"},
        }

    def names(self, cluster: str) -> set[str]:
        return {f"{p}/{ns}/{n}" for (p, ns, n) in self.objects[cluster]}

    def writes(self) -> list[tuple[str, str, str]]:
        """(cluster, method, path) of every request that changes something."""
        return [(c, m, p) for c, m, p, _ in self.requests if m != "GET"]

    def handle(self, method: str, raw: str, body: bytes) -> tuple[int, dict]:
        path, _, query = raw.partition("?")
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] not in self.objects:
            return 404, {"kind": "Status", "status": "Failure", "code": 404}
        cluster, rest = parts[0], parts[1:]
        with self.lock:
            self.requests.append((cluster, method, "/" + "/".join(rest), body))
        if rest == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if rest == ["apis"]:
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
        if rest == ["api", "v1"]:
            return 200, _resource_list()
        if len(rest) >= 5 and rest[:3] == ["api", "v1", "namespaces"] and rest[4] in RESOURCES:
            return self._object(cluster, method, rest[3], rest[4], rest[5:], body, query)
        return 404, {"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound"}

    def _object(
        self,
        cluster: str,
        method: str,
        ns: str,
        plural: str,
        rest: list[str],
        body: bytes,
        query: str,
    ) -> tuple[int, dict]:
        objs = self.objects[cluster]
        kind = RESOURCES[plural][0]
        if not rest:
            if method == "POST":
                obj = json.loads(body or b"{}")
                name = obj.get("metadata", {}).get("name", "")
                if "dryRun" not in query:
                    self.add(cluster, plural, ns, name)
                return 201, obj
            items = [o for (p, n, _), o in sorted(objs.items()) if p == plural and n == ns]
            return 200, {"kind": f"{kind}List", "apiVersion": "v1", "items": items}
        key = (plural, ns, rest[0])
        if key not in objs:
            return 404, {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "NotFound",
                "message": f'{plural} "{rest[0]}" not found',
                "code": 404,
            }
        if method == "DELETE":
            obj = objs.pop(key)
            return 200, obj
        return 200, objs[key]
